"""Fulfilment: the "order paid" entry point — order state, claim code, entitlement, jobs.

Every source of orders ends here once a payment is confirmed (today Stripe Checkout, see
bot/billing/checkout.py). Every change is compare-and-set on the order status, so a
duplicate or late confirmation changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bot.i18n import _
from bot.lifecycle import Lifecycle
from bot.models import Kind, Order, OrderStatus, Stage
from bot.notices import sale_text
from bot.planning import Planner, entitlement_data, in_guild_locale, order_data
from bot.shop import close_unpaid, new_claim_code, reserve_stock
from bot.store import Duplicate, Tx

log = logging.getLogger(__name__)


class Fulfilment:
    """Pays, grants and closes orders inside the caller's transaction."""

    def __init__(self, lifecycle: Lifecycle, planner: Planner) -> None:
        self.lifecycle = lifecycle
        self.planner = planner

    async def order_paid(
        self,
        tx: Tx,
        order: Order,
        event_id: str,
        *,
        source: str | None = None,
        also: Mapping[str, Any] | None = None,
    ) -> bool:
        """pending/expired/failed → paid, with claim code, entitlement and jobs; once only.

        `also`: more order fields to record (the Stripe ids a checkout event names), set
        whether or not the order changes state (with the state change: one statement).

        A pending order's stock reservation becomes the sale. An expired or failed one had
        given its reservation back, so stock is taken again; when none is left the payment
        is still honoured (the buyer gets what they paid for) and the admin is told.
        """
        changed = False
        for _attempt in range(5):
            try:
                changed = await tx.orders.update(
                    order.id,
                    only_if_status=(OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.FAILED),
                    status=OrderStatus.PAID,
                    paid_at=tx.now,
                    claim_code=new_claim_code(),
                    **(also or {}),
                )
                break
            except Duplicate:  # claim code collision: draw another
                continue
        if not changed:
            if also:
                await tx.orders.update(order.id, **also)
            log.info("order %s already fulfilled; event %s changes nothing", order.id, event_id)
            return False
        if order.status in (OrderStatus.EXPIRED, OrderStatus.FAILED):
            shortage = await reserve_stock(tx, order)
            if shortage is not None:
                await self._oversold(tx, order, shortage, event_id)
        await tx.audit.add(
            "order.paid",
            guild_id=order.guild_id,
            user_id=order.recipient_id,
            actor_id=order.buyer_id,
            order_id=order.id,
            event_id=event_id,
            amount=order.amount,
            currency=order.currency,
        )
        await self._log_sale(tx, order, source or "Stripe Checkout")
        # What webhooks show of an order (order_data) is what this update did not change.
        await self.planner.webhook(
            tx, "order.paid", f"order:{order.id}:paid", order_data(order, "paid")
        )
        if order.recipient_id is not None:
            await self.grant(tx, order, order.recipient_id)
        else:  # unclaimed: a refund or dispute seen before this event still applies
            await self.lifecycle.catch_up(tx, order.id)
        return True

    async def grant(self, tx: Tx, order: Order, user_id: int) -> None:
        """Create the entitlement for a paid order and queue its on_purchase jobs."""
        product = await tx.products.get(order.product_id)
        assert product is not None
        ends_at = None
        if product.kind == Kind.TIMED and product.duration_days:
            ends_at = tx.now + timedelta(days=product.duration_days)
        entitlement = await tx.entitlements.create(
            guild_id=order.guild_id,
            user_id=user_id,
            product_id=product.id,
            order_id=order.id,
            ends_at=ends_at,
        )
        await tx.audit.add(
            "entitlement.grant",
            guild_id=order.guild_id,
            user_id=user_id,
            order_id=order.id,
            entitlement_id=entitlement.id,
            product=product.name,
            ends_at=ends_at,
        )
        await self.planner.stage(tx, order, product, user_id, entitlement.id, Stage.ON_PURCHASE)
        await self.planner.webhook(
            tx,
            "access.granted",
            f"entitlement:{entitlement.id}:granted",
            entitlement_data(entitlement),
        )
        await self.lifecycle.catch_up(tx, order.id)  # events that arrived before this one

    async def order_unpaid(
        self, tx: Tx, order: Order, status: str, event_id: str, reason: str
    ) -> bool:
        """pending → failed/expired: the payment failed or the link expired; stock returns."""
        return await close_unpaid(tx, order, status, reason, event_id)

    async def _log_sale(self, tx: Tx, order: Order, source: str) -> None:
        """The admin log: the sale, and the product's stock running out with it."""
        if await tx.notices.log_channel(order.guild_id) is None:
            return  # no log channel: nothing is logged (Planner.log), nothing to render
        product = await tx.products.get(order.product_id)
        assert product is not None
        await self.planner.log(
            tx,
            order.guild_id,
            "sale",
            await in_guild_locale(tx, order.guild_id, sale_text, order, product, source),
            key=f"order:{order.id}:log:sale",
            amount=(order.amount, order.currency),
        )
        if product.stock is not None and await tx.products.units_left(product.id) == 0:
            await self.planner.log(
                tx,
                order.guild_id,
                "stock",
                await in_guild_locale(
                    tx,
                    order.guild_id,
                    lambda: _(
                        "📦 **{product}** is sold out (last unit: order #{order}). Add stock "
                        "with `/shop product edit`.",
                        product=product.name,
                        order=order.id,
                    ),
                ),
                key=f"order:{order.id}:log:sold_out",
            )

    async def _oversold(self, tx: Tx, order: Order, shortage: str, event_id: str) -> None:
        """Tell the admin a payment came in for stock that was gone (audit row, shown by
        /shop diagnose and /shop why, and a warning in the log)."""
        product = await tx.products.get(order.product_id)
        name = product.name if product else f"#{order.product_id}"
        log.warning(
            "order %s of %s was paid after it sold out (%s); delivered anyway: "
            "add stock or license keys, or refund it",
            order.id,
            name,
            shortage,
        )
        await tx.audit.add(
            "order.oversold",
            guild_id=order.guild_id,
            user_id=order.recipient_id,
            actor_id=order.buyer_id,
            order_id=order.id,
            event_id=event_id,
            product_id=order.product_id,
            product=name,
            shortage=shortage,
        )
        await self.planner.log(
            tx,
            order.guild_id,
            "stock",
            await in_guild_locale(
                tx,
                order.guild_id,
                lambda: _(
                    "📦 Order #{order} of **{product}** was paid after it sold out ({shortage}); "
                    "it was delivered anyway. Add stock or license keys, or refund it.",
                    order=order.id,
                    product=name,
                    shortage=shortage,
                ),
            ),
            key=f"order:{order.id}:log:oversold",
        )
