"""Subscription events: invoices paid or failed, subscriptions created, changed or ended.

Each records a fact under Stripe's ids (bot/store/subscriptions.py) and settles the order it
belongs to (`Lifecycle.settle`), so the order of arrival does not matter (bot/lifecycle.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.i18n import _
from bot.lifecycle import Lifecycle
from bot.messages import payment_failed_text
from bot.models import EntitlementStatus, OrderStatus, Subscription
from bot.money import format_price
from bot.notices import MANAGE_CUSTOM_ID, MANAGE_LABEL
from bot.planning import Keys, Planner, in_guild_locale, order_data
from bot.store import Tx
from bot.stripe_facts import (
    invoice_paid_at,
    invoice_period_end,
    invoice_subscription,
    merge_subscription,
    stripe_id,
)


class SubscriptionEvents:
    """invoice.paid / invoice.payment_failed / customer.subscription.created|updated|deleted."""

    def __init__(self, lifecycle: Lifecycle, planner: Planner) -> None:
        self.lifecycle = lifecycle
        self.planner = planner

    async def invoice_paid(
        self, tx: Tx, event: dict[str, Any], invoice: dict[str, Any]
    ) -> int | None:
        """A paid period: access runs to its end (and a lapsed one comes back)."""
        sub_id, period_end = invoice_subscription(invoice), invoice_period_end(invoice)
        if sub_id is None or period_end is None:
            return None
        invoice_id = stripe_id(invoice.get("id"))
        amount_paid = invoice.get("amount_paid")
        if invoice_id is not None and isinstance(amount_paid, int):
            paid_at = invoice_paid_at(invoice, event)
            await tx.invoices.record_paid(invoice_id, sub_id, amount_paid, paid_at)
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
        if invoice.get("billing_reason") == "subscription_cycle" and invoice_id is not None:
            product = await tx.products.get(order.product_id)
            await self.planner.log(
                tx,
                order.guild_id,
                "renewal",
                await in_guild_locale(
                    tx,
                    order.guild_id,
                    lambda: _(
                        "🔁 Renewal: **{product}** ({amount}) of <@{member}> · order #{order}, "
                        "paid until {until}",
                        product=product.name if product else order.product_id,
                        amount=format_price(
                            int(amount_paid or 0), str(invoice.get("currency") or "")
                        ),
                        member=order.recipient_id or order.buyer_id,
                        order=order.id,
                        until=f"<t:{int(period_end.timestamp())}:D>",
                    ),
                ),
                key=f"invoice:{invoice_id}:log:paid",
                amount=(int(amount_paid or 0), str(invoice.get("currency") or "")),
            )
            await self.planner.webhook(
                tx,
                "subscription.renewed",
                f"invoice:{invoice_id}:paid",
                {
                    **order_data(order),
                    "subscription_id": sub_id,
                    "invoice_id": invoice_id,
                    "amount_paid": amount_paid,
                    "paid_through": period_end.isoformat(),
                },
            )
        await self.lifecycle.settle(tx, order, event_id=event["id"])
        return order.id

    async def invoice_payment_failed(
        self, tx: Tx, event: dict[str, Any], invoice: dict[str, Any]
    ) -> int | None:
        """Recorded and logged; the buyer is told at each failed attempt Stripe reports (at
        most once a day per subscription), while they still have access."""
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
        attempt = invoice.get("attempt_count")
        params = {
            "product": product.name if product else order.product_id,
            "member": order.buyer_id,
            "order": order.id,
        }
        await self.planner.log(
            tx,
            order.guild_id,
            "payment_failed",
            await in_guild_locale(
                tx,
                order.guild_id,
                lambda: (
                    _(
                        "💳 Renewal payment failed: **{product}** of <@{member}> · order "
                        "#{order} · attempt {attempt}; Stripe retries it.",
                        attempt=attempt,
                        **params,
                    )
                    if isinstance(attempt, int)
                    else _(
                        "💳 Renewal payment failed: **{product}** of <@{member}> · order "
                        "#{order}; Stripe retries it.",
                        **params,
                    )
                ),
            ),
            key=f"event:{event['id']}:log",
        )
        await self.planner.webhook(
            tx,
            "subscription.payment_failed",
            f"event:{event['id']}",
            {
                **order_data(order),
                "subscription_id": sub_id,
                "invoice_id": invoice.get("id"),
                "attempt": attempt if isinstance(attempt, int) else None,
            },
        )
        if (
            order.status == OrderStatus.PAID
            and entitlement is not None
            and entitlement.status == EntitlementStatus.ACTIVE
            and product is not None
        ):
            keep_until = (entitlement.ends_at or tx.now) + self.lifecycle.access.grace
            day = datetime.fromtimestamp(int(event.get("created") or 0), UTC).date()
            await self.planner.notice(
                tx,
                order.guild_id,
                order.buyer_id,
                order.id,
                key=Keys.notice(f"subscription:{sub_id}", f"payment_failed:{day.isoformat()}"),
                text=await in_guild_locale(
                    tx,
                    order.guild_id,
                    payment_failed_text,
                    product.name,
                    f"<t:{int(keep_until.timestamp())}:f>",
                ),
                buttons=[
                    (
                        await in_guild_locale(tx, order.guild_id, _, MANAGE_LABEL),
                        MANAGE_CUSTOM_ID.format(guild_id=order.guild_id),
                    )
                ],
            )
        return order.id

    async def subscription_changed(
        self, tx: Tx, event: dict[str, Any], obj: dict[str, Any]
    ) -> int | None:
        """Status and cancel_at_period_end from the newest event; an ended one stays ended."""
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
        await self.lifecycle.settle(tx, order, event_id=event["id"])
        return order.id

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
