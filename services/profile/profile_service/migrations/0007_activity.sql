-- The account's security activity, as its owner sees it (GET /api/auth/activity): sign-ins and failed
-- attempts (written by sign-in), and every security event of the account (written by the consumer from
-- the event, once: event_id is unique), each with where it came from.
CREATE TABLE activity (
    id          bigserial PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    type        text NOT NULL,
    ip          text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}',
    event_id    uuid UNIQUE
);
-- The feed reads newest first with a keyset cursor (at, id).
CREATE INDEX activity_user_feed ON activity (user_id, at DESC, id DESC);

-- Set when a password is set through an emailed link (invitation, reset): the sign-in that follows is
-- expected, from whatever browser, so it does not email "new sign-in to your account".
ALTER TABLE users ADD COLUMN quiet_next_sign_in boolean NOT NULL DEFAULT false;
