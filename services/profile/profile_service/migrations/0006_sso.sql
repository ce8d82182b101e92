-- Single sign-on: one OpenID Connect provider per client, the address domains it answers for, the
-- provider identities linked to accounts, and the sign-ins under way (state between start and callback).

CREATE TABLE sso_providers (
    client_id         uuid PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    issuer            text NOT NULL,
    oidc_client_id    text NOT NULL,
    secret_key_id     text NOT NULL,        -- the client secret, AES-GCM sealed (secretbox) ...
    secret_sealed     bytea NOT NULL,       -- ... with the client id as associated data
    password_sign_in  boolean NOT NULL,
    trust_idp_mfa     boolean NOT NULL DEFAULT false,
    metadata          jsonb NOT NULL,       -- the endpoints discovery found when the provider was saved
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A domain answers to one client: the sign-in methods of an address are decided by its domain alone.
CREATE TABLE sso_domains (
    domain     text PRIMARY KEY CHECK (domain = lower(domain)),
    client_id  uuid NOT NULL REFERENCES sso_providers (client_id) ON DELETE CASCADE
);
CREATE INDEX sso_domains_client ON sso_domains (client_id);

-- After the first sign-in, only (issuer, subject) finds the account: never the email claim again.
-- A link undone by "This wasn't me" stays as a revoked row, so that identity can never link again.
CREATE TABLE sso_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    linked_at  timestamptz NOT NULL DEFAULT now(),
    event_id   uuid,                  -- the profile.sso_linked event: its "This wasn't me" link revokes
    revoked_at timestamptz,
    PRIMARY KEY (issuer, subject)
);
CREATE UNIQUE INDEX sso_identities_one_per_issuer ON sso_identities (user_id, issuer) WHERE revoked_at IS NULL;

-- A started sign-in: found by the hash of its `state`, bound to the browser by the hash of a cookie,
-- single use (deleted when the callback claims it). The PKCE verifier is sealed like the client secret.
CREATE TABLE sso_logins (
    state_hash      bytea PRIMARY KEY,
    browser_hash    bytea NOT NULL,
    client_id       uuid NOT NULL REFERENCES sso_providers (client_id) ON DELETE CASCADE,
    nonce_hash      bytea NOT NULL,
    verifier_key_id text NOT NULL,
    verifier_sealed bytea NOT NULL,
    reauth_session  uuid,                 -- a re-authentication: the public id of the session it steps up
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX sso_logins_expiry ON sso_logins (expires_at);
