-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE connections (
    id                     TEXT PRIMARY KEY NOT NULL,
    name                   TEXT NOT NULL UNIQUE,
    caption                TEXT,
    provider               TEXT NOT NULL,
    domain_url             TEXT,
    consumer_key           TEXT,
    consumer_secret_sealed TEXT,
    company                TEXT,
    enabled                INTEGER NOT NULL DEFAULT 0,
    field_mapping          TEXT NOT NULL,
    external_id_field      TEXT,
    api_version            TEXT NOT NULL,
    signature_scheme       TEXT NOT NULL,
    signature_header       TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);

CREATE TABLE webhook_secrets (
    id            TEXT PRIMARY KEY NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sealed        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER
);
CREATE INDEX webhook_secrets_by_connection ON webhook_secrets (connection_id);

-- seq gives arrival order; (connection_id, idempotency_key) deduplicates.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    connection_id   TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    processed_at    INTEGER,
    UNIQUE (connection_id, idempotency_key)
);
CREATE INDEX events_pending ON events (connection_id, seq) WHERE processed_at IS NULL;
CREATE INDEX events_processed ON events (processed_at) WHERE processed_at IS NOT NULL;
