"""Stripe events → our records. `dispatch.py` is the table from event type to handler; the
handlers are grouped by what they are about: `checkout.py` (a Checkout Session paid, failed
or expired), `subscriptions.py` (invoices and subscription changes), `refunds.py` (full
refunds and disputes). Each ends in one of the two entry points every source of orders
shares: "order paid" (`Fulfilment.order_paid`) and "access ended" (`Access.end`).

The package imports nothing itself, so `bot.lifecycle` can use `refunds.Reversals`."""
