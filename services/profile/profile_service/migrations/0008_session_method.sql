-- How a session signed in (password, passkey, sso; "+totp" and the like once a second factor completed
-- it), shown in the session list beside its browser and address.
ALTER TABLE sessions ADD COLUMN method text NOT NULL DEFAULT '';
