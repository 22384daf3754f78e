-- Admin log channel and its notices (bot/notices.py). A notice is a row written in the same
-- transaction as the fact it reports; one `log_flush` job per guild posts every unsent row
-- older than the batching window as one message (or a few, within Discord's limits), so a
-- burst of sales reads as a summary and nothing is lost across a restart.
CREATE TABLE log_channels (
    guild_id INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    set_by INTEGER,
    updated_at TEXT NOT NULL
);

CREATE TABLE log_notices (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    kind TEXT NOT NULL,                     -- sale, renewal, refund, dispute, delivery_failed, ...
    text TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,                 -- the same fact is reported once
    retry_job_id INTEGER,                   -- a failed delivery: the Retry button's job
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX log_notices_unsent ON log_notices (guild_id, sent_at, id);
