-- Offboarding: an MSP admin deactivates the account of someone who left the client company. While
-- inactive, no sign-in of any kind, reset or invitation works; nothing else about the account changes,
-- so reactivating gives back the same password and factors.
ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;
