-- License validation (bot/licenses.py) and outbound webhooks (bot/webhooks_out.py).
-- A product's license keys bind to up to `max_devices` hardware ids on first validation.
ALTER TABLE products ADD COLUMN max_devices INTEGER NOT NULL DEFAULT 1 CHECK (max_devices >= 1);
CREATE INDEX license_keys_key ON license_keys (key);

CREATE TABLE license_devices (
    id INTEGER PRIMARY KEY,
    license_id INTEGER NOT NULL REFERENCES license_keys (id),
    hwid TEXT NOT NULL,
    bound_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    UNIQUE (license_id, hwid)
);

-- Outbound webhook endpoints: the signing secret is kept (it must sign every delivery) and
-- shown once, at creation. `failing_since`: the first failed attempt since the last success.
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,                   -- comma-separated event types
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    failing_since TEXT,
    disabled_reason TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- One row per POST attempt: the delivery log of an endpoint.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    job_id INTEGER,
    status_code INTEGER,
    error TEXT,
    attempted_at TEXT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
