-- On SQLite, a webhook's client is made due after its commit, in bulk, not
-- in the commit itself (see store/events.rs, make_clients_due): this is the
-- last event seq whose client has been made due. Every event stored before
-- this migration already has its client row.
INSERT INTO meta (key, value)
SELECT 'clients_due_through', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM events;
