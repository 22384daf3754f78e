-- Integration API (SPEC §5c): API keys (only a hash is kept), the answers of POST /orders kept
-- by Idempotency-Key, and which key recorded which external order under which reference.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,                   -- the first characters, shown in `api-key list`
    key_hash TEXT NOT NULL UNIQUE,          -- SHA-256 hex of the whole key
    scopes TEXT NOT NULL,                   -- comma-separated subset of read,write,licenses
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);

CREATE TABLE api_idempotency (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id),
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,             -- SHA-256 of the method, path and canonical body
    status INTEGER NOT NULL,
    body TEXT NOT NULL,                     -- the JSON answered the first time
    created_at TEXT NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
);

CREATE TABLE api_orders (
    order_id INTEGER PRIMARY KEY REFERENCES orders (id),
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id),
    reference TEXT NOT NULL,
    created_at TEXT NOT NULL
);
