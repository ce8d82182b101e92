-- notifier schema: tables come with the notifier feature issue.
SELECT 1;
