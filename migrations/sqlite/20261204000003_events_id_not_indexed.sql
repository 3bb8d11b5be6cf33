-- An event's id is made here (a UUIDv7) and never looked up by: its unique
-- index cost every webhook about a tenth of the store's work. SQLite cannot
-- drop a column's UNIQUE, so the table is made again with its rows, its
-- other indexes and its AUTOINCREMENT counter: a seq is never used twice
-- (clients' stamps and the clients_due_through mark compare seqs, and
-- pruned events had seqs above the rows left).
CREATE TABLE events_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    connection_id   TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    processed_at    INTEGER,
    urgent          INTEGER NOT NULL DEFAULT 1,
    job_id          TEXT,
    signed_digest   TEXT,
    UNIQUE (connection_id, idempotency_key)
);
INSERT INTO events_new (seq, id, connection_id, idempotency_key, client_id, event_type,
    occurred_at, received_at, payload, processed_at, urgent, job_id, signed_digest)
SELECT seq, id, connection_id, idempotency_key, client_id, event_type,
    occurred_at, received_at, payload, processed_at, urgent, job_id, signed_digest
FROM events;
DELETE FROM sqlite_sequence WHERE name = 'events_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_processed ON events (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX events_by_client ON events (connection_id, client_id, seq) WHERE processed_at IS NULL;
CREATE INDEX events_by_job ON events (job_id) WHERE job_id IS NOT NULL AND processed_at IS NULL;
CREATE UNIQUE INDEX events_signed_digest ON events (connection_id, signed_digest)
    WHERE signed_digest IS NOT NULL;
