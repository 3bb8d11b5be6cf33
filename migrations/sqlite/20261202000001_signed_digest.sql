-- The SHA-256 of the signed content of an `hmac-sha256-hex` webhook: its
-- id headers are not signed, so a replayed body under a fresh X-Request-Id
-- is recognised by this instead. NULL for other events.
ALTER TABLE events ADD COLUMN signed_digest TEXT;
CREATE UNIQUE INDEX events_signed_digest ON events (connection_id, signed_digest)
    WHERE signed_digest IS NOT NULL;
