-- One grammar for job keys (bot/planning.py). `open_key`: at most one pending or running job
-- per key, for repairs that may repeat over time (rejoin re-grants, reconciliation fixes).
ALTER TABLE delivery_jobs ADD COLUMN open_key TEXT COLLATE "C";
CREATE UNIQUE INDEX delivery_jobs_open_key ON delivery_jobs (open_key)
    WHERE open_key IS NOT NULL AND status IN ('pending', 'running');

-- The SQLite twin also rewrites keys written before this grammar existed; a PostgreSQL
-- database starts at this schema, so it has none to rewrite.
