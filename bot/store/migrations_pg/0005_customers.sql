-- One Stripe customer per Discord user per install, reused by every checkout, so the
-- billing portal (/manage) reaches all of a buyer's subscriptions.
CREATE TABLE customers (
    user_id BIGINT PRIMARY KEY,
    stripe_customer_id TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL
);
