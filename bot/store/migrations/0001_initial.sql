-- Every SPEC §3 entity. Times are UTC ISO-8601 text (bot.clock.iso), money integer minor units.

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,                 -- casefolded name, unique among live products
    description TEXT NOT NULL DEFAULT '',
    price_amount INTEGER NOT NULL CHECK (price_amount >= 0),
    currency TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('one_time', 'timed', 'subscription')),
    interval TEXT CHECK (interval IN ('day', 'week', 'month', 'year')),
    duration_days INTEGER CHECK (duration_days > 0),
    trial_days INTEGER CHECK (trial_days >= 0),
    stock INTEGER CHECK (stock >= 0),       -- NULL = unlimited
    stripe_price_id TEXT,
    allow_promotion_codes INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    archived INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX products_live_name ON products (guild_id, name_key) WHERE archived = 0;

CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id),
    type TEXT NOT NULL CHECK (type IN ('grant_role', 'send_message', 'deliver_license',
                                       'kick', 'ban', 'create_invite')),
    stage TEXT NOT NULL CHECK (stage IN ('on_purchase', 'on_expire', 'on_refund', 'on_chargeback')),
    role_id INTEGER,
    channel_id INTEGER,
    message TEXT,
    revoke_on TEXT NOT NULL DEFAULT 'on_expire,on_refund,on_chargeback',
    removed INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX actions_product ON actions (product_id, stage);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    buyer_id INTEGER NOT NULL,
    recipient_id INTEGER,                   -- who gets the entitlement (NULL until claimed)
    product_id INTEGER NOT NULL REFERENCES products (id),
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'failed',
                                           'refunded', 'disputed')),
    stripe_session_id TEXT UNIQUE,
    stripe_payment_intent_id TEXT,
    stripe_subscription_id TEXT,
    stripe_customer_id TEXT,
    checkout_url TEXT,
    checkout_expires_at TEXT,
    claim_code TEXT UNIQUE,
    failure_reason TEXT,
    created_at TEXT NOT NULL,
    paid_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_buyer ON orders (guild_id, buyer_id, status);
CREATE INDEX orders_pi ON orders (stripe_payment_intent_id);
CREATE INDEX orders_sub ON orders (stripe_subscription_id);

CREATE TABLE entitlements (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products (id),
    order_id INTEGER UNIQUE REFERENCES orders (id),   -- NULL for manual grants
    status TEXT NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
    starts_at TEXT NOT NULL,
    ends_at TEXT,                                      -- NULL = forever
    end_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX entitlements_member ON entitlements (guild_id, user_id, status);

CREATE TABLE role_grants (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    role_id INTEGER NOT NULL,
    entitlement_id INTEGER NOT NULL REFERENCES entitlements (id),
    status TEXT NOT NULL CHECK (status IN ('granted', 'revoked')),
    granted_at TEXT NOT NULL,
    revoked_at TEXT,
    UNIQUE (entitlement_id, role_id)
);
CREATE INDEX role_grants_member ON role_grants (guild_id, user_id, role_id);

CREATE TABLE delivery_jobs (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,                     -- grant_role, receipt, send_message, ...
    order_id INTEGER REFERENCES orders (id),
    entitlement_id INTEGER REFERENCES entitlements (id),
    action_id INTEGER REFERENCES actions (id),
    payload TEXT NOT NULL DEFAULT '{}',     -- JSON
    dedupe_key TEXT UNIQUE,                 -- the same effect is never queued twice
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed',
                                           'canceled', 'expired')),
    waiting_for_member INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    expires_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_due ON delivery_jobs (status, waiting_for_member, next_attempt_at);
CREATE INDEX jobs_member ON delivery_jobs (guild_id, user_id, status);

CREATE TABLE job_attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES delivery_jobs (id),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,                           -- completed, retry, waiting, failed
    error TEXT
);
CREATE INDEX job_attempts_job ON job_attempts (job_id);

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,                    -- Stripe event id: duplicates are ignored
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('received', 'processed', 'failed', 'ignored')),
    attempts INTEGER NOT NULL DEFAULT 0,
    order_id INTEGER,
    last_error TEXT,
    received_at TEXT NOT NULL,
    processed_at TEXT
);
CREATE INDEX webhook_events_status ON webhook_events (status, received_at);

CREATE TABLE license_keys (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id),
    key TEXT NOT NULL,
    order_id INTEGER UNIQUE REFERENCES orders (id),   -- a key is handed out exactly once
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (product_id, key)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    guild_id INTEGER,
    user_id INTEGER,
    actor_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',      -- JSON
    created_at TEXT NOT NULL
);
CREATE INDEX audit_member ON audit_log (guild_id, user_id);

CREATE TABLE pending_screening (
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
