-- When a create of the client's Lead was first sent and not yet confirmed
-- (epoch ms): kept across a lost answer or a crash, so the retry looks the
-- Lead up before creating it again.
ALTER TABLE clients ADD COLUMN create_sent_at INTEGER;
