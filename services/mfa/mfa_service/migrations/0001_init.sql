-- mfa schema: the user projection, TOTP secrets, WebAuthn credentials and challenges, recovery codes.

-- What mfa knows about users, kept from profile.user_created / profile.user_updated events
-- (the otpauth label and WebAuthn user name); never read from profile's schema.
CREATE TABLE users (
    user_id    text PRIMARY KEY,
    email      text NOT NULL,
    name       text NOT NULL,
    event_at   timestamptz NOT NULL  -- occurred_at of the event that wrote the row: older events lose
);

-- One authenticator app per user. enabled_at NULL = a pending setup that expires at pending_until.
-- The secret is AES-GCM ciphertext (nonce || ciphertext+tag) under the key named by key_id.
CREATE TABLE totp_secrets (
    user_id        text PRIMARY KEY,
    key_id         text NOT NULL,
    secret         bytea NOT NULL,
    enabled_at     timestamptz,
    pending_until  timestamptz,
    -- RFC 6238 time step of the last accepted code: a code whose step is not later is a replay.
    last_used_step bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webauthn_credentials (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL,
    credential_id bytea NOT NULL UNIQUE,
    public_key    bytea NOT NULL,
    sign_count    bigint NOT NULL,
    transports    text[] NOT NULL DEFAULT '{}',
    aaguid        text NOT NULL,
    backed_up     boolean NOT NULL,
    passkey       boolean NOT NULL,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id, created_at);

-- Server-side WebAuthn ceremony state: only the SHA-256 of the challenge, single use (DELETE ... RETURNING).
CREATE TABLE webauthn_challenges (
    id             uuid PRIMARY KEY,
    challenge_hash bytea NOT NULL UNIQUE,
    ceremony       text NOT NULL CHECK (ceremony IN ('registration', 'authentication', 'passkey')),
    user_id        text,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);

-- Recovery codes as HMAC-SHA-256(RECOVERY_CODE_KEY, user_id || normalised code); spent once.
CREATE TABLE recovery_codes (
    user_id    text NOT NULL,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code_hash)
);
