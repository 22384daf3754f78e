"""Lifecycle: settling an order from every known Stripe fact, and ending access that is due.

The events that record the facts are in bot/billing/; the "access ended" entry point is
`Access.end` (bot/access.py).

Ordering rule. Stripe delivers events late, twice and out of order, so no event is taken
as "the next step". Each event records a *fact* under Stripe's own ids, and then the order
it belongs to is *settled* from every fact known so far:

- Facts: a paid subscription period (`invoice.paid` → `paid_through`, the latest period end
  seen); a subscription's status and `cancel_at_period_end` (taken from an event only if it
  is newer, by (`created`, event id), than the last one applied; once a subscription has
  ended it stays ended); a full refund or a dispute of a payment intent, and which invoice
  (of which subscription) a payment intent paid. Facts are keyed by subscription / payment
  intent id, so one that arrives before `checkout.session.completed` waits, and is applied
  when that event pays the order (`catch_up`).
- Settling only moves forward. An order goes paid → refunded → disputed, never back. An
  entitlement's end only gets stronger (active < expired or lapsed < subscription canceled
  < refund < chargeback); nothing re-activates it, except a subscription that merely lapsed
  (its grace ran out while Stripe retried) whose late invoice is then paid. `ends_at` only
  grows (max of the paid period ends) and ending access does not touch it.
- Every fact runs its stage (`on_expire`, `on_refund`, `on_chargeback`) once per order, and
  each role is revoked once per entitlement, even if a stronger fact got there first.

So one set of events gives the same orders, entitlements and jobs in any order, any number
of times. DM notices about a failed payment are the exception: they describe the moment, so
one is sent only if the failure arrives while the buyer still has access.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.access import CANCELED, EXPIRED, LAPSED, Access
from bot.billing.refunds import SETTLED_ORDERS, Reversals, payments_of
from bot.models import Kind, Order, OrderStatus
from bot.shop import close_unpaid
from bot.store import Store, Tx

log = logging.getLogger(__name__)

EXPIRY_BATCH = 100
#: How long past its link's expiry a checkout stays pending, so Stripe's own
#: `checkout.session.expired` (or a payment made in the last second) arrives first.
STALE_CHECKOUT_GRACE = timedelta(minutes=10)
#: The longest a Checkout Session can live (Stripe's default): for orders with no expiry stored.
MAX_CHECKOUT_LIFETIME = timedelta(hours=24)


class Lifecycle:
    """Settles orders and expires access inside the caller's transaction."""

    def __init__(self, access: Access, reversals: Reversals) -> None:
        self.access = access
        self.reversals = reversals

    async def catch_up(self, tx: Tx, order_id: int) -> None:
        """Apply every fact that arrived before the order was paid (or claimed)."""
        order = await tx.orders.get(order_id)
        if order is not None:
            await self._settle(tx, order, None)

    async def settle(self, tx: Tx, order: Order, *, event_id: str | None = None) -> None:
        """Bring the order and its entitlement in line with every known fact (idempotent);
        `event_id` is the Stripe event being applied, named in the audit of what it ends."""
        await self._settle(tx, await tx.orders.get(order.id) or order, event_id)

    async def _settle(self, tx: Tx, order: Order, event_id: str | None) -> None:
        """`settle` of an order just read in this transaction."""
        if order.status not in SETTLED_ORDERS:
            return  # not paid (yet): facts wait for checkout.session.completed
        any_reversal = False
        for payment_intent in await payments_of(tx, order):
            for reversal in await tx.subscriptions.reversals(payment_intent):
                await self.reversals.apply(tx, order, reversal)
                any_reversal = True
        if any_reversal:
            order = await tx.orders.get(order.id) or order
        if order.stripe_subscription_id is None:
            return
        entitlement = await tx.entitlements.by_order(order.id)
        if entitlement is None:
            return
        sub = await tx.subscriptions.get(order.stripe_subscription_id)
        if sub is None:
            return
        if sub.paid_through is not None:
            restorable = order.status == OrderStatus.PAID and sub.ended_at is None
            await self.access.extend(tx, entitlement, sub.paid_through, restorable=restorable)
        if sub.ended_at is not None:
            await self.access.end(
                tx, order, entitlement, CANCELED, event_id=event_id or sub.last_event_id or None
            )

    async def expire_due(self, tx: Tx, limit: int = EXPIRY_BATCH) -> int:
        """End active access whose time is up (subscriptions after their grace period).

        Returns how many entitlements ended (at most `limit`; call again while it is `limit`).
        """
        due = await tx.entitlements.due_to_end(
            cutoff=tx.now, subscription_cutoff=tx.now - self.access.grace, limit=limit
        )
        ended = 0
        for entitlement in due:
            product = await tx.products.get(entitlement.product_id)
            ending = LAPSED if product and product.kind == Kind.SUBSCRIPTION else EXPIRED
            order = await tx.orders.get(entitlement.order_id) if entitlement.order_id else None
            ended += await self.access.end(tx, order, entitlement, ending)
        return ended

    async def close_stale_checkouts(self, tx: Tx, limit: int = EXPIRY_BATCH) -> int:
        """Expire, on our side, pending orders whose checkout can no longer be paid (Stripe's
        expiry event was lost, or the process died before the session was made), giving their
        stock back. A payment that still arrives is honoured (`Fulfilment.order_paid`).

        Returns how many orders were closed (at most `limit`).
        """
        stale = await tx.orders.stale_pending(
            expired_before=tx.now - STALE_CHECKOUT_GRACE,
            created_before=tx.now - MAX_CHECKOUT_LIFETIME - STALE_CHECKOUT_GRACE,
            limit=limit,
        )
        closed = 0
        for order in stale:
            closed += await close_unpaid(
                tx, order, OrderStatus.EXPIRED, "the checkout was abandoned"
            )
        return closed


async def run_expiry(
    store: Store,
    lifecycle: Lifecycle,
    wake: Callable[[], None],
    interval: float = 30.0,
    *,
    periodic: Callable[[Tx], Awaitable[int]] | None = None,
) -> None:
    """Forever: expire due access and abandoned checkouts every `interval` seconds (and at
    once on start); then `periodic` (reminders and the webhook-silence check, bot/notices.py).

    The schedule is the entitlements and orders tables, so a restart loses nothing; `wake`
    tells the delivery worker that revocations and notices were queued.
    """
    while True:
        ended = closed = 0
        try:
            async with store.transaction() as tx:
                ended = await lifecycle.expire_due(tx)
        except Exception:
            log.exception("expiry pass failed; trying again in %.0f s", interval)
        try:
            async with store.transaction() as tx:
                closed = await lifecycle.close_stale_checkouts(tx)
        except Exception:
            log.exception("closing abandoned checkouts failed; trying again in %.0f s", interval)
        if periodic is not None:
            try:
                async with store.transaction() as tx:
                    await periodic(tx)
            except Exception:
                log.exception("planning reminders failed; trying again in %.0f s", interval)
        if ended:
            log.info("ended %d expired entitlements", ended)
            wake()
        if closed:
            log.info("closed %d abandoned checkouts; their stock is back", closed)
        if ended < EXPIRY_BATCH and closed < EXPIRY_BATCH:
            await asyncio.sleep(interval)
