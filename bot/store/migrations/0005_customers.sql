-- One Stripe customer per Discord user per install, reused by every checkout, so the
-- billing portal (/manage) reaches all of a buyer's subscriptions.
CREATE TABLE customers (
    user_id INTEGER PRIMARY KEY,
    stripe_customer_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
