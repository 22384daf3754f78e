-- A transiently failed event goes back to `received` with a time before which it is not
-- tried again (bounded exponential backoff, bot/inbox.py); NULL means "due now".
ALTER TABLE webhook_events ADD COLUMN next_attempt_at TEXT COLLATE "C";
