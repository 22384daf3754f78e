-- Subscription payments. In this Stripe API version an Invoice has no payment_intent and a
-- Charge no invoice: the InvoicePayment object links them. Both tables are facts kept by
-- Stripe's ids, so a refund or dispute seen before its order is paid waits and is applied
-- later (bot/lifecycle.py).

-- Paid invoices of subscriptions, from `invoice.paid` (`/shop refund` refunds the latest).
CREATE TABLE invoices (
    stripe_invoice_id TEXT COLLATE "C" PRIMARY KEY,
    stripe_subscription_id TEXT COLLATE "C" NOT NULL,
    amount_paid BIGINT NOT NULL,
    paid_at TEXT COLLATE "C" NOT NULL,                  -- status_transitions.paid_at (or the event time)
    recorded_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX invoices_subscription ON invoices (stripe_subscription_id, paid_at);

-- Which invoice (and so which subscription) a payment intent paid, as Stripe's
-- InvoicePayment list answered when a refund or dispute of it came in.
CREATE TABLE invoice_payments (
    stripe_payment_intent_id TEXT COLLATE "C" NOT NULL,
    stripe_invoice_id TEXT COLLATE "C" NOT NULL,
    stripe_subscription_id TEXT COLLATE "C",            -- NULL: the invoice bills no subscription
    recorded_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (stripe_payment_intent_id, stripe_invoice_id)
);
CREATE INDEX invoice_payments_subscription ON invoice_payments (stripe_subscription_id);

