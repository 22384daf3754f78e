-- Access lifecycle (bot/lifecycle.py): Stripe facts kept by Stripe's ids, so an event that
-- arrives before its order is known still counts once the order is paid.

-- A Stripe subscription as we last saw it. Status and cancel_at_period_end follow the newest
-- event by (created, event id); period ends only grow; once ended it stays ended.
CREATE TABLE subscriptions (
    stripe_subscription_id TEXT PRIMARY KEY,
    status TEXT,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    current_period_end TEXT,                -- from customer.subscription.* (paid or not)
    paid_through TEXT,                      -- max period end of a paid invoice
    ended_at TEXT,                          -- set by .deleted (or a terminal status)
    last_event_created INTEGER NOT NULL DEFAULT 0,
    last_event_id TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);

-- Full refunds and disputes of a payment, recorded once per payment intent and kind.
CREATE TABLE payment_reversals (
    stripe_payment_intent_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('refund', 'dispute')),
    stripe_object_id TEXT NOT NULL,         -- the charge (refund) or dispute id
    event_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (stripe_payment_intent_id, kind)
);

-- Bumped when a lapsed subscription entitlement is restored, so the jobs of the new access
-- period get fresh dedupe keys.
ALTER TABLE entitlements ADD COLUMN cycle INTEGER NOT NULL DEFAULT 0;

CREATE INDEX entitlements_ending ON entitlements (status, ends_at);
CREATE INDEX delivery_jobs_entitlement ON delivery_jobs (entitlement_id, status);
