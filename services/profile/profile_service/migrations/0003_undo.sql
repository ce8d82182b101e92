-- "This wasn't me" undoes what its email reported. Address changes are recorded so an undo can restore
-- the old address (the link names the event); password_changed_at lets an undo void a password that was
-- set after the change it undoes (an attacker who moved the address may have reset the password there).

CREATE TABLE email_changes (
    event_id   uuid PRIMARY KEY,            -- the profile.email_changed event the link names
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_email  text NOT NULL,
    new_email  text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    undone_at  timestamptz
);
CREATE INDEX email_changes_user ON email_changes (user_id, changed_at);

ALTER TABLE users ADD COLUMN password_changed_at timestamptz;

-- Sessions that view an account (impersonation) are found by the viewed user, to end them with its own.
CREATE INDEX sessions_impersonated ON sessions (impersonated_user_id) WHERE impersonated_user_id IS NOT NULL;
