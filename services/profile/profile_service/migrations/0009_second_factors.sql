-- The second factors a password or SSO sign-in offers, as mfa last answered (second_factors.offered):
-- NULL until asked, and cleared by every change of the account's factors profile learns of (mfa's events,
-- the latch, an undo, a failed check). The epoch counts those clearings, so an answer read before one is
-- never stored after it.
ALTER TABLE users ADD COLUMN second_factors text[],
                  ADD COLUMN second_factors_epoch bigint NOT NULL DEFAULT 0;
