-- Backfill jobs, the events they brought in, and the priority of webhooks over
-- backfill in the queue.

CREATE TABLE backfill_jobs (
    id             TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- receiving | received | interrupted
    state          TEXT NOT NULL,
    lines_read     BIGINT NOT NULL DEFAULT 0,
    -- lines stored as events (in the same transaction as they are)
    accepted       BIGINT NOT NULL DEFAULT 0,
    rejected_count BIGINT NOT NULL DEFAULT 0,
    -- the first rejected lines, as JSON [{"line": n, "error": "..."}]
    rejected       TEXT NOT NULL DEFAULT '[]',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX backfill_jobs_by_connection ON backfill_jobs (connection_id, created_at);

ALTER TABLE events ADD COLUMN job_id TEXT;
CREATE INDEX events_by_job ON events (job_id) WHERE job_id IS NOT NULL AND processed_at IS NULL;

-- TRUE while the client has a webhook event pending: such clients are claimed
-- before those with only backfill rows, so a large backfill never delays a webhook.
ALTER TABLE clients ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT TRUE;
DROP INDEX clients_due;
-- Claims read one range per (connection, urgency), oldest due first.
CREATE INDEX clients_due ON clients (connection_id, urgent, next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Done events are deleted after the retention period, oldest first.
CREATE INDEX events_processed ON events (processed_at) WHERE processed_at IS NOT NULL;
