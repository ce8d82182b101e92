-- Known devices (OWASP "device cookies"): a browser that completed a sign-in to an account holds a
-- long-lived cookie; only its SHA-256 is stored. One cookie value per browser, one row per account it
-- signed in to. A known device has its own failure counter and lock, so a stranger's guesses (counted on
-- users.failed_attempts / locked_until, the "untrusted" counter) never lock the owner's browser out.
-- A sign-in from a browser with no row for the account is a sign-in from a new device.

CREATE TABLE devices (
    token_hash      bytea NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),   -- first sign-in of this browser to this account
    last_sign_in_at timestamptz NOT NULL DEFAULT now(),
    failed_attempts integer NOT NULL DEFAULT 0,            -- consecutive, from this device; reset by a success
    locked_until    timestamptz,
    PRIMARY KEY (token_hash, user_id)
);
-- The per-account cap on remembered devices and the cascade from users walk this index.
CREATE INDEX devices_user ON devices (user_id, last_sign_in_at DESC);
