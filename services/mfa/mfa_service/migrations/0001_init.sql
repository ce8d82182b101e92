-- mfa schema: tables come with the mfa feature issue.
SELECT 1;
