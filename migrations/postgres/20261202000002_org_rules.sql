-- Whether the org's Lead assignment rule runs on a Lead's first create, and
-- what a duplicate rule's match on create leads to (create, adopt, report).
ALTER TABLE connections ADD COLUMN assign_on_create BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE connections ADD COLUMN on_duplicate TEXT NOT NULL DEFAULT 'create';
