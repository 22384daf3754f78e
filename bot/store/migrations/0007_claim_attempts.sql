-- Wrong /claim codes per user (bot/membership.py): the attempt limit survives a restart.
-- Rows older than the limit's window are deleted as new ones are written.
CREATE TABLE claim_attempts (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER NOT NULL,
    attempted_at TEXT NOT NULL
);
CREATE INDEX claim_attempts_user ON claim_attempts (user_id, attempted_at);
