-- The org's API usage as Salesforce last reported it (Sforce-Limit-Info), and
-- whether an event is urgent (webhooks) or may wait when the budget is spent.
ALTER TABLE connections ADD COLUMN api_used BIGINT;
ALTER TABLE connections ADD COLUMN api_max BIGINT;
ALTER TABLE connections ADD COLUMN api_usage_at BIGINT;
ALTER TABLE events ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT TRUE;
