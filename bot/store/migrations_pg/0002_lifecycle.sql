-- Access lifecycle (bot/lifecycle.py): Stripe facts kept by Stripe's ids, so an event that
-- arrives before its order is known still counts once the order is paid.

-- A Stripe subscription as we last saw it. Status and cancel_at_period_end follow the newest
-- event by (created, event id); period ends only grow; once ended it stays ended.
CREATE TABLE subscriptions (
    stripe_subscription_id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT COLLATE "C",
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    current_period_end TEXT COLLATE "C",                -- from customer.subscription.* (paid or not)
    paid_through TEXT COLLATE "C",                      -- max period end of a paid invoice
    ended_at TEXT COLLATE "C",                          -- set by .deleted (or a terminal status)
    last_event_created BIGINT NOT NULL DEFAULT 0,
    last_event_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Full refunds and disputes of a payment, recorded once per payment intent and kind.
CREATE TABLE payment_reversals (
    stripe_payment_intent_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('refund', 'dispute')),
    stripe_object_id TEXT COLLATE "C" NOT NULL,         -- the charge (refund) or dispute id
    event_id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    recorded_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (stripe_payment_intent_id, kind)
);

-- Bumped when a lapsed subscription entitlement is restored, so the jobs of the new access
-- period get fresh dedupe keys.
ALTER TABLE entitlements ADD COLUMN cycle BIGINT NOT NULL DEFAULT 0;

CREATE INDEX entitlements_ending ON entitlements (status, ends_at);
CREATE INDEX delivery_jobs_entitlement ON delivery_jobs (entitlement_id, status);
