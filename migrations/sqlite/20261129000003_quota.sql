-- The org's API usage as Salesforce last reported it (Sforce-Limit-Info), and
-- whether an event is urgent (webhooks) or may wait when the budget is spent.
ALTER TABLE connections ADD COLUMN api_used INTEGER;
ALTER TABLE connections ADD COLUMN api_max INTEGER;
ALTER TABLE connections ADD COLUMN api_usage_at INTEGER;
ALTER TABLE events ADD COLUMN urgent INTEGER NOT NULL DEFAULT 1;
