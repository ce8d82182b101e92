-- Issue #13. One event may ask for two emails (profile.email_changed goes to the old and to the new
-- address), so a job names its event apart from its own id (`{event id}.old` for the old address's copy)
-- and says which copy it is.
ALTER TABLE email_jobs ADD COLUMN event_id text;
UPDATE email_jobs SET event_id = id;
ALTER TABLE email_jobs ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE email_jobs ADD COLUMN variant text;  -- NULL for the one email of an event, else 'old' / 'new'

-- The address the last attempt was made to, so an operator sees where a failed email was going (a job
-- keeps `recipient` only when its event carried the address; the others follow the users projection).
ALTER TABLE email_jobs ADD COLUMN last_recipient text;

-- A reset or invitation link is kept only until its email is sent, failed or expired: scrub those
-- already finished (the dispatcher scrubs each job as it finishes from now on).
UPDATE email_jobs SET data = data - ARRAY['reset_url', 'set_password_url']
WHERE status <> 'queued' AND data ?| ARRAY['reset_url', 'set_password_url'];
