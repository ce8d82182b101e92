-- The transactional outbox and the consumer inbox, created in every service's own schema.

CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    type            text NOT NULL,
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    published_at    timestamptz
);

-- The relay's work queue: only unsent rows, in commit-ish order.
CREATE INDEX outbox_unsent ON outbox (next_attempt_at, created_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay when a row commits (NOTIFY is delivered at commit, never for a rollback).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(current_schema() || '_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotent consumer: a row per handled message, written in the same transaction as its effect.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    message_id   text NOT NULL,
    type         text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);
