-- Sync state per (connection, client), and the daily-limit pause per connection.

ALTER TABLE connections ADD COLUMN paused_until INTEGER;
ALTER TABLE connections ADD COLUMN pause_reason TEXT;

CREATE TABLE clients (
    connection_id      TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    client_id          TEXT NOT NULL,
    -- pending | synced | retrying | dead | converted ("held" is shown, not stored)
    state              TEXT NOT NULL,
    lead_id            TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    first_failure_at   INTEGER,
    -- due for a write at this time; NULL when nothing is due
    next_attempt_at    INTEGER,
    lease_owner        TEXT,
    lease_until        INTEGER,
    last_error_code    TEXT,
    last_error_message TEXT,
    last_synced_at     INTEGER,
    warnings           TEXT NOT NULL DEFAULT '[]',
    -- what was last written, slot by slot, with its (occurredAt, seq) stamp
    known              TEXT NOT NULL DEFAULT '{}',
    company_sent       INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (connection_id, client_id)
);
CREATE INDEX clients_due ON clients (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX clients_by_state ON clients (connection_id, state, client_id);
CREATE INDEX events_by_client ON events (connection_id, client_id, seq) WHERE processed_at IS NULL;
