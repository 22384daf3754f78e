"""Refunds and disputes: a full refund or a chargeback of a payment ends what it paid for.

Where a refund takes a role away: `RefundEvents.charge_refunded` records the reversal under
the payment intent and applies it (`Reversals.apply`): the order becomes `refunded` and
`Access.end(REFUND)` asks the planner for the revocations (`Planner.revocations`, the
ledger rule); the worker's `revoke_role` job then removes the role (bot/delivery.py). A
reversal seen before the order is paid waits as a fact and is applied when the order is
(`Lifecycle.settle`, which calls `Reversals.apply` too).

A subscription's payments are its invoices' payment intents: Stripe's InvoicePayments say
which invoice (and so which subscription) a refunded or disputed payment intent paid; the
inbox asks Stripe before the event is applied (bot/invoice_payments.py) and the answer is
kept (`tx.invoices`). The order is then the one that started that subscription, found by
the subscription id we stored ourselves, never from metadata.
"""

from __future__ import annotations

from typing import Any

from bot.access import CHARGEBACK, REFUND, Access
from bot.i18n import _
from bot.messages import access_ended_text, refund_text
from bot.models import Order, OrderStatus, PaymentReversal, Product
from bot.money import format_price
from bot.planning import Keys, Planner, in_guild_locale, order_data
from bot.store import Tx
from bot.stripe_facts import reversed_payment

#: Orders whose facts apply now; a fact about any other order waits for it to be paid.
SETTLED_ORDERS = (OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.DISPUTED)


async def order_of_payment(tx: Tx, payment_intent: str) -> Order | None:
    """Our order a payment intent paid: a one-time order's own, or the order that started
    the subscription whose invoice it paid (None: not known yet; the fact then waits)."""
    order = await tx.orders.by_payment_intent(payment_intent)
    if order is None:
        subscription = await tx.invoices.subscription_of_payment(payment_intent)
        order = await tx.orders.by_subscription(subscription) if subscription else None
    return order


async def payments_of(tx: Tx, order: Order) -> list[str]:
    """Every payment intent on record that paid for the order (its invoices' for a
    subscription)."""
    found = [order.stripe_payment_intent_id] if order.stripe_payment_intent_id else []
    if order.stripe_subscription_id:
        found += await tx.invoices.payments_of_subscription(order.stripe_subscription_id)
    return found


class Reversals:
    """A full refund or dispute of a paid order: its status, its access, its stage jobs."""

    def __init__(self, access: Access, planner: Planner) -> None:
        self.access = access
        self.planner = planner

    async def apply(self, tx: Tx, order: Order, reversal: PaymentReversal) -> None:
        """paid → refunded → disputed (never back); access ends; once, in any order."""
        dispute = reversal.kind == "dispute"
        target = OrderStatus.DISPUTED if dispute else OrderStatus.REFUNDED
        allowed = (OrderStatus.PAID, OrderStatus.REFUNDED) if dispute else (OrderStatus.PAID,)
        changed = await tx.orders.update(order.id, only_if_status=allowed, status=target)
        product = await tx.products.get(order.product_id)
        assert product is not None
        if changed:
            await self.planner.webhook(
                tx, f"order.{target}", f"order:{order.id}:{target}", order_data(order, target)
            )
            await tx.audit.add(
                f"order.{target}",
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                order_id=order.id,
                event_id=reversal.event_id,
                stripe_id=reversal.stripe_object_id,
            )
        await self._tell(tx, order, product, dispute)  # once per order and kind, any order
        ending = CHARGEBACK if dispute else REFUND
        entitlement = await tx.entitlements.by_order(order.id)
        if entitlement is not None:
            await self.access.end(tx, order, entitlement, ending, event_id=reversal.event_id)
            if not dispute and entitlement.user_id != order.buyer_id:  # a gift's recipient
                await self.access.notify(
                    tx,
                    entitlement,
                    key=Keys.notice(f"entitlement:{entitlement.id}", "ended:refund"),
                    text=await in_guild_locale(
                        tx, order.guild_id, access_ended_text, product.name, REFUND.reason
                    ),
                )
            return
        # unclaimed: the stage still runs
        await self.planner.stage(tx, order, product, order.buyer_id, None, ending.stage)

    async def _tell(self, tx: Tx, order: Order, product: Product, dispute: bool) -> None:
        """The admin log line, and for a refund the buyer's DM (SPEC §4: refund notice)."""
        kind = "dispute" if dispute else "refund"
        await self.planner.log(
            tx,
            order.guild_id,
            kind,
            await in_guild_locale(tx, order.guild_id, reversal_log_text, order, product, dispute),
            key=f"order:{order.id}:log:{kind}",
            amount=(order.amount, order.currency),
        )
        if not dispute:
            await self.planner.notice(
                tx,
                order.guild_id,
                order.buyer_id,
                order.id,
                key=Keys.notice(f"order:{order.id}", "refunded"),
                text=await in_guild_locale(
                    tx,
                    order.guild_id,
                    lambda: refund_text(
                        product.name, order.id, format_price(order.amount, order.currency)
                    ),
                ),
            )


def reversal_log_text(order: Order, product: Product, dispute: bool) -> str:
    """The admin log line of a refund or dispute, in the current locale."""
    params = {
        "order": order.id,
        "product": product.name,
        "amount": format_price(order.amount, order.currency),
        "buyer": order.buyer_id,
    }
    gift = order.recipient_id is not None and order.recipient_id != order.buyer_id
    if dispute and gift:
        return _(
            "⚠️ Dispute (chargeback): order #{order} **{product}** ({amount}) of <@{buyer}> "
            "(gift for <@{recipient}>); its access ends.",
            recipient=order.recipient_id,
            **params,
        )
    if dispute:
        return _(
            "⚠️ Dispute (chargeback): order #{order} **{product}** ({amount}) of <@{buyer}>; "
            "its access ends.",
            **params,
        )
    if gift:
        return _(
            "↩️ Refund: order #{order} **{product}** ({amount}) of <@{buyer}> (gift for "
            "<@{recipient}>); its access ends.",
            recipient=order.recipient_id,
            **params,
        )
    return _(
        "↩️ Refund: order #{order} **{product}** ({amount}) of <@{buyer}>; its access ends.",
        **params,
    )


class RefundEvents:
    """charge.refunded / charge.dispute.created."""

    def __init__(self, reversals: Reversals) -> None:
        self.reversals = reversals

    async def charge_refunded(
        self, tx: Tx, event: dict[str, Any], charge: dict[str, Any]
    ) -> int | None:
        """Fully refunded → access ends (on_refund); a partial refund is only recorded."""
        payment_intent = reversed_payment(charge)
        if payment_intent is None:
            return None
        order = await order_of_payment(tx, payment_intent)
        if not charge.get("refunded"):
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

    async def dispute_created(
        self, tx: Tx, event: dict[str, Any], dispute: dict[str, Any]
    ) -> int | None:
        """A chargeback: access ends at once (on_chargeback), whatever the dispute's outcome."""
        payment_intent = reversed_payment(dispute)
        if payment_intent is None:
            await tx.audit.add(
                "dispute.unmatched", event_id=event["id"], dispute_id=dispute.get("id")
            )
            return None
        order = await order_of_payment(tx, payment_intent)
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
        if order.status in SETTLED_ORDERS:
            for reversal in await tx.subscriptions.reversals(payment_intent):
                if reversal.kind == kind:
                    await self.reversals.apply(tx, order, reversal)
        return order.id
