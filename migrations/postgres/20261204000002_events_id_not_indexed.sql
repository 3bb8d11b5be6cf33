-- An event's id is made here (a UUIDv7) and never looked up by: its unique
-- index cost every webhook work for nothing.
ALTER TABLE events DROP CONSTRAINT events_id_key;
