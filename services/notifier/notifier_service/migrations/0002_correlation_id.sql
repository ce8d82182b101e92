-- The correlation id of the request that caused the event, so one grep follows it to the email sent.
ALTER TABLE email_jobs ADD COLUMN correlation_id text;
