-- The web shop (SPEC §5b).

-- Where an order came from (SPEC §3 "Order source"); every order before this came from /buy.
ALTER TABLE orders ADD COLUMN source TEXT COLLATE "C" NOT NULL DEFAULT 'discord'
    CHECK (source IN ('discord', 'web', 'api', 'sku', 'manual'));
-- The per-order secret the cancel_url carries (SPEC §5), so nobody can cancel another
-- buyer's checkout. NULL for orders created before it existed.
ALTER TABLE orders ADD COLUMN cancel_token TEXT COLLATE "C";
-- A web order bought without logging in with Discord has no buyer yet: buyer_id is 0 (no
-- Discord id is 0) and recipient_id NULL until someone claims it with its code (/claim),
-- who then becomes both.

-- A web buyer's Discord access token (scope guilds.join), encrypted with a key derived from
-- http.session_secret, kept only until the add-member job has used it (bot/delivery.py);
-- deleted then, when the order is closed unpaid, or once past `expires_at`.
CREATE TABLE join_tokens (
    order_id BIGINT PRIMARY KEY REFERENCES orders (id),
    user_id BIGINT NOT NULL,
    ciphertext TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX join_tokens_expiry ON join_tokens (expires_at);
