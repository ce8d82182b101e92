-- The W3C traceparent of the consume that queued the job: the email's send span joins the request's trace.
ALTER TABLE email_jobs ADD COLUMN traceparent text;
