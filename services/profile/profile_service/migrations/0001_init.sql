-- profile schema: tables come with the profile feature issue.
SELECT 1;
