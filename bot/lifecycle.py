"""Access lifecycle: renewals, failed payments, cancellations, refunds, disputes and expiry.

Ordering rule. Stripe delivers events late, twice and out of order, so no event is taken
as "the next step". Each event records a *fact* under Stripe's own ids, and then the order
it belongs to is *settled* from every fact known so far:

- Facts: a paid subscription period (`invoice.paid` → `paid_through`, the latest period end
  seen); a subscription's status and `cancel_at_period_end` (taken from an event only if it
  is newer, by (`created`, event id), than the last one applied; once a subscription has
  ended it stays ended); a full refund or a dispute of a payment intent. Facts are keyed by
  subscription / payment intent id, so one that arrives before `checkout.session.completed`
  waits, and is applied when that event pays the order (`catch_up`).
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
from typing import TYPE_CHECKING, Any

from bot.access import CANCELED, CHARGEBACK, EXPIRED, LAPSED, REFUND, Access
from bot.config import Settings
from bot.messages import payment_failed_text
from bot.models import EntitlementStatus, Kind, Order, OrderStatus, PaymentReversal, Subscription
from bot.store import Store, Tx
from bot.stripe_facts import (
    invoice_period_end,
    invoice_subscription,
    merge_subscription,
    stripe_id,
)

if TYPE_CHECKING:
    from bot.fulfilment import Fulfilment

log = logging.getLogger(__name__)

SETTLED_ORDERS = (OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.DISPUTED)
EXPIRY_BATCH = 100

Handler = Callable[[Tx, dict[str, Any], dict[str, Any]], Awaitable[int | None]]


class Lifecycle:
    """Applies lifecycle events and expiry inside the caller's transaction."""

    def __init__(self, settings: Settings, fulfilment: Fulfilment) -> None:
        self.settings = settings
        self.access = Access(settings, fulfilment)
        self._handlers: dict[str, Handler] = {
            "invoice.paid": self._invoice_paid,
            "invoice.payment_failed": self._invoice_failed,
            "customer.subscription.created": self._subscription_changed,
            "customer.subscription.updated": self._subscription_changed,
            "customer.subscription.deleted": self._subscription_changed,
            "charge.refunded": self._charge_refunded,
            "charge.dispute.created": self._dispute_created,
        }

    async def apply(self, tx: Tx, event: dict[str, Any]) -> tuple[str, int | None]:
        """Record the event's fact and settle its order; return (inbox status, order id)."""
        handler = self._handlers.get(event["type"])
        if handler is None:
            return "ignored", None
        return "processed", await handler(tx, event, event["data"]["object"])

    async def catch_up(self, tx: Tx, order_id: int) -> None:
        """Apply every fact that arrived before the order was paid (or claimed)."""
        order = await tx.orders.get(order_id)
        if order is not None:
            await self.settle(tx, order)

    async def settle(self, tx: Tx, order: Order) -> None:
        """Bring the order and its entitlement in line with every known fact (idempotent)."""
        order = await tx.orders.get(order.id) or order
        if order.status not in SETTLED_ORDERS:
            return  # not paid (yet): facts wait for checkout.session.completed
        if order.stripe_payment_intent_id:
            for reversal in await tx.subscriptions.reversals(order.stripe_payment_intent_id):
                await self._reverse(tx, order, reversal)
            order = await tx.orders.get(order.id) or order
        entitlement = await tx.entitlements.by_order(order.id)
        if entitlement is None or order.stripe_subscription_id is None:
            return
        sub = await tx.subscriptions.get(order.stripe_subscription_id)
        if sub is None:
            return
        if sub.paid_through is not None:
            restorable = order.status == OrderStatus.PAID and sub.ended_at is None
            await self.access.extend(tx, entitlement, sub.paid_through, restorable=restorable)
        if sub.ended_at is not None:
            await self.access.end(tx, order, entitlement, CANCELED)

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

    # events --------------------------------------------------------------------------

    async def _invoice_paid(
        self, tx: Tx, event: dict[str, Any], invoice: dict[str, Any]
    ) -> int | None:
        sub_id, period_end = invoice_subscription(invoice), invoice_period_end(invoice)
        if sub_id is None or period_end is None:
            return None
        sub = await self._subscription(tx, sub_id)
        if sub.paid_through is None or period_end > sub.paid_through:
            await tx.subscriptions.save(sub.replace(paid_through=period_end))
        order = await tx.orders.by_subscription(sub_id)
        if order is None:
            return None
        await tx.audit.add(
            "subscription.paid",
            guild_id=order.guild_id,
            user_id=order.recipient_id,
            order_id=order.id,
            event_id=event["id"],
            invoice_id=invoice.get("id"),
            billing_reason=invoice.get("billing_reason"),
            paid_through=period_end,
        )
        await self.settle(tx, order)
        return order.id

    async def _invoice_failed(
        self, tx: Tx, event: dict[str, Any], invoice: dict[str, Any]
    ) -> int | None:
        sub_id = invoice_subscription(invoice)
        order = await tx.orders.by_subscription(sub_id) if sub_id else None
        if order is None:
            return None
        await tx.audit.add(
            "subscription.payment_failed",
            guild_id=order.guild_id,
            user_id=order.buyer_id,
            order_id=order.id,
            event_id=event["id"],
            invoice_id=invoice.get("id"),
            attempt=invoice.get("attempt_count"),
        )
        entitlement = await tx.entitlements.by_order(order.id)
        product = await tx.products.get(order.product_id)
        if (
            order.status == OrderStatus.PAID
            and entitlement is not None
            and entitlement.status == EntitlementStatus.ACTIVE
            and product is not None
        ):
            keep_until = (entitlement.ends_at or tx.now) + self.access.grace
            await self.access.notify_user(
                tx,
                order.guild_id,
                order.buyer_id,
                order.id,
                key=f"notice:invoice:{invoice.get('id')}:payment_failed",
                text=payment_failed_text(product.name, f"<t:{int(keep_until.timestamp())}:f>"),
            )
        return order.id

    async def _subscription_changed(
        self, tx: Tx, event: dict[str, Any], obj: dict[str, Any]
    ) -> int | None:
        sub_id = stripe_id(obj.get("id"))
        if sub_id is None:
            return None
        current = await self._subscription(tx, sub_id)
        merged = merge_subscription(current, obj, event)
        if merged != current:
            await tx.subscriptions.save(merged)
        order = await tx.orders.by_subscription(sub_id)
        if order is None:
            return None
        if merged != current:
            await tx.audit.add(
                "subscription.status",
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                order_id=order.id,
                event_id=event["id"],
                status=merged.status,
                cancel_at_period_end=merged.cancel_at_period_end,
                ended_at=merged.ended_at,
            )
        await self.settle(tx, order)
        return order.id

    async def _charge_refunded(
        self, tx: Tx, event: dict[str, Any], charge: dict[str, Any]
    ) -> int | None:
        payment_intent = stripe_id(charge.get("payment_intent"))
        if payment_intent is None:
            return None
        order = await tx.orders.by_payment_intent(payment_intent)
        if not charge.get("refunded"):  # partial: recorded, access unchanged
            if order is not None:
                await tx.audit.add(
                    "order.partial_refund",
                    guild_id=order.guild_id,
                    user_id=order.recipient_id,
                    order_id=order.id,
                    event_id=event["id"],
                    amount_refunded=charge.get("amount_refunded"),
                    amount=charge.get("amount"),
                )
            return None if order is None else order.id
        return await self._reversal(tx, event, payment_intent, "refund", charge, order)

    async def _dispute_created(
        self, tx: Tx, event: dict[str, Any], dispute: dict[str, Any]
    ) -> int | None:
        payment_intent = stripe_id(dispute.get("payment_intent"))
        charge = dispute.get("charge")
        if payment_intent is None and isinstance(charge, dict):
            payment_intent = stripe_id(charge.get("payment_intent"))
        if payment_intent is None:
            await tx.audit.add(
                "dispute.unmatched", event_id=event["id"], dispute_id=dispute.get("id")
            )
            return None
        order = await tx.orders.by_payment_intent(payment_intent)
        return await self._reversal(tx, event, payment_intent, "dispute", dispute, order)

    async def _reversal(
        self,
        tx: Tx,
        event: dict[str, Any],
        payment_intent: str,
        kind: str,
        obj: dict[str, Any],
        order: Order | None,
    ) -> int | None:
        await tx.subscriptions.record_reversal(
            payment_intent, kind, str(obj.get("id")), event["id"], int(event["created"])
        )
        if order is None:
            return None
        await self.settle(tx, order)
        return order.id

    async def _reverse(self, tx: Tx, order: Order, reversal: PaymentReversal) -> None:
        """A full refund or dispute of a paid order: status, entitlement, stage jobs."""
        dispute = reversal.kind == "dispute"
        target = OrderStatus.DISPUTED if dispute else OrderStatus.REFUNDED
        allowed = (OrderStatus.PAID, OrderStatus.REFUNDED) if dispute else (OrderStatus.PAID,)
        if await tx.orders.update(order.id, only_if_status=allowed, status=target):
            await tx.audit.add(
                f"order.{target}",
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                order_id=order.id,
                event_id=reversal.event_id,
                stripe_id=reversal.stripe_object_id,
            )
        ending = CHARGEBACK if dispute else REFUND
        entitlement = await tx.entitlements.by_order(order.id)
        if entitlement is not None:
            await self.access.end(tx, order, entitlement, ending)
            return
        product = await tx.products.get(order.product_id)
        assert product is not None
        await self.access.fulfilment.queue_stage(
            tx, order, product, order.buyer_id, None, ending.stage
        )

    async def _subscription(self, tx: Tx, sub_id: str) -> Subscription:
        return await tx.subscriptions.get(sub_id) or Subscription(
            stripe_subscription_id=sub_id,
            status=None,
            cancel_at_period_end=False,
            current_period_end=None,
            paid_through=None,
            ended_at=None,
            last_event_created=0,
            last_event_id="",
            updated_at=tx.now,
        )


async def run_expiry(
    store: Store, lifecycle: Lifecycle, wake: Callable[[], None], interval: float = 30.0
) -> None:
    """Forever: expire due access every `interval` seconds (and at once on start).

    The schedule is the entitlements table, so a restart loses nothing; `wake` tells the
    delivery worker that revocations and notices were queued.
    """
    while True:
        ended = 0
        try:
            async with store.transaction() as tx:
                ended = await lifecycle.expire_due(tx)
        except Exception:
            log.exception("expiry pass failed; trying again in %.0f s", interval)
        if ended:
            log.info("ended %d expired entitlements", ended)
            wake()
        if ended < EXPIRY_BATCH:
            await asyncio.sleep(interval)
