-- Times are milliseconds since the Unix epoch (UTC), as in the SQLite store.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE connections (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    caption                TEXT,
    provider               TEXT NOT NULL,
    domain_url             TEXT,
    consumer_key           TEXT,
    consumer_secret_sealed TEXT,
    company                TEXT,
    enabled                BOOLEAN NOT NULL DEFAULT FALSE,
    field_mapping          TEXT NOT NULL,
    external_id_field      TEXT,
    api_version            TEXT NOT NULL,
    signature_scheme       TEXT NOT NULL,
    signature_header       TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    -- the daily API limit pauses a connection for every replica
    paused_until           BIGINT,
    pause_reason           TEXT
);

CREATE TABLE webhook_secrets (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    sealed        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT
);
CREATE INDEX webhook_secrets_by_connection ON webhook_secrets (connection_id);

CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    connection_id   TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    payload         TEXT NOT NULL,
    processed_at    BIGINT,
    UNIQUE (connection_id, idempotency_key)
);
CREATE INDEX events_pending ON events (connection_id, seq) WHERE processed_at IS NULL;
CREATE INDEX events_by_client ON events (connection_id, client_id, seq) WHERE processed_at IS NULL;

CREATE TABLE clients (
    connection_id      TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    client_id          TEXT NOT NULL,
    state              TEXT NOT NULL,
    lead_id            TEXT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    first_failure_at   BIGINT,
    next_attempt_at    BIGINT,
    lease_owner        TEXT,
    lease_until        BIGINT,
    last_error_code    TEXT,
    last_error_message TEXT,
    last_synced_at     BIGINT,
    warnings           TEXT NOT NULL DEFAULT '[]',
    known              TEXT NOT NULL DEFAULT '{}',
    company_sent       BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (connection_id, client_id)
);
CREATE INDEX clients_due ON clients (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX clients_by_state ON clients (connection_id, state, client_id);
