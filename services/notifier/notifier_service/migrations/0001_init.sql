-- notifier schema: the users projection and the email courier queue.

-- Who to write to: kept from profile.user_created / profile.user_updated. `event_at` is the
-- occurred_at of the event that wrote the row, so an older event arriving late cannot win.
CREATE TABLE users (
    user_id    text PRIMARY KEY,
    email      text NOT NULL,
    name       text NOT NULL,
    event_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per email to send, keyed by the event that asked for it (Message-ID <{id}@portal>).
-- queued -> sent | failed | expired. A claimed job stays `queued` with `next_attempt_at` pushed one
-- lease ahead: if the sender dies, the job comes due again by itself.
CREATE TABLE email_jobs (
    id              text PRIMARY KEY,
    type            text NOT NULL,
    user_id         text NOT NULL,
    recipient       text,            -- set when the event carries the address; else the projection's
    data            jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    expires_at      timestamptz,     -- the link in the email is useless after this
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'failed', 'expired')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_to         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE INDEX email_jobs_due ON email_jobs (next_attempt_at) WHERE status = 'queued';
CREATE INDEX email_jobs_status ON email_jobs (status, created_at);

-- Wake the dispatcher when a job commits (NOTIFY is delivered at commit, never for a rollback).
CREATE FUNCTION email_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(current_schema() || '_email_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER email_jobs_inserted AFTER INSERT ON email_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION email_jobs_notify();
