-- profile schema: the MSP's clients, accounts, sessions, one-time password tokens and the audit log.

CREATE TABLE clients (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                     uuid PRIMARY KEY,
    email                  text NOT NULL,
    name                   text NOT NULL,
    role                   text NOT NULL CHECK (role IN ('client_user', 'msp_admin')),
    client_id              uuid REFERENCES clients (id),
    title                  text,
    mobile                 text,
    phone                  text,
    password_hash          text,            -- NULL until the invitation is accepted
    two_factor_enabled     boolean NOT NULL DEFAULT false,   -- projection of mfa events
    two_factor_changed_at  timestamptz,
    failed_attempts        integer NOT NULL DEFAULT 0,       -- consecutive; reset by a success
    locked_until           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (role = 'msp_admin' OR client_id IS NOT NULL)
);
-- Email is unique case-insensitively.
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
CREATE INDEX users_client ON users (client_id);

-- Only the SHA-256 of the cookie value is stored; `public_id` names the session in lists.
CREATE TABLE sessions (
    id_hash                bytea PRIMARY KEY,
    public_id              uuid NOT NULL UNIQUE,
    user_id                uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state                  text NOT NULL CHECK (state IN ('signed_in', 'second_factor_required', 'void')),
    impersonated_user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    impersonation_reason   text,
    second_factor_failures integer NOT NULL DEFAULT 0,
    webauthn_challenge_id  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    last_seen_at           timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,   -- the absolute limit
    auth_at                timestamptz NOT NULL DEFAULT now(),
    reauth_at              timestamptz,
    user_agent             text NOT NULL DEFAULT '',
    ip                     text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Reset and invitation tokens: stored hashed, single use, a newer one voids the older ones.
CREATE TABLE password_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('reset', 'invite')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    voided_at  timestamptz
);
CREATE INDEX password_tokens_user ON password_tokens (user_id, purpose, created_at);

-- "This wasn't me" links are single use: their jti is recorded here.
CREATE TABLE not_me_uses (
    jti     text PRIMARY KEY,
    user_id uuid NOT NULL,
    used_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    type    text NOT NULL,
    ip      text NOT NULL DEFAULT '',
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_user ON audit_log (user_id, at DESC, id DESC);
