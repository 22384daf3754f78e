"""Fulfilment: the "order paid" entry point — order state, claim code, entitlement, jobs.

Every source of orders ends here once a payment is confirmed (today Stripe Checkout, see
bot/billing/checkout.py). Every change is compare-and-set on the order status, so a
duplicate or late confirmation changes nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.lifecycle import Lifecycle
from bot.models import Kind, Order, OrderStatus, Stage
from bot.planning import Planner
from bot.shop import new_claim_code
from bot.store import Duplicate, Tx

log = logging.getLogger(__name__)


class Fulfilment:
    """Pays, grants and closes orders inside the caller's transaction."""

    def __init__(self, lifecycle: Lifecycle, planner: Planner) -> None:
        self.lifecycle = lifecycle
        self.planner = planner

    async def order_paid(self, tx: Tx, order: Order, event_id: str) -> bool:
        """pending/expired/failed → paid, with claim code, entitlement and jobs; once only."""
        if order.status == OrderStatus.EXPIRED:
            # The link had been given up on and its stock released; take it again.
            await tx.products.take_stock(order.product_id)
        changed = False
        for _ in range(5):
            try:
                changed = await tx.orders.update(
                    order.id,
                    only_if_status=(OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.FAILED),
                    status=OrderStatus.PAID,
                    paid_at=tx.now,
                    claim_code=new_claim_code(),
                )
                break
            except Duplicate:  # claim code collision: draw another
                continue
        if not changed:
            log.info("order %s already fulfilled; event %s changes nothing", order.id, event_id)
            return False
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
        await self.lifecycle.catch_up(tx, order.id)  # events that arrived before this one

    async def order_unpaid(
        self, tx: Tx, order: Order, status: str, event_id: str, reason: str
    ) -> bool:
        """pending → failed/expired: the payment failed or the link expired; stock returns."""
        changed = await tx.orders.update(
            order.id, only_if_status=(OrderStatus.PENDING,), status=status, failure_reason=reason
        )
        if changed:
            await tx.products.return_stock(order.product_id)
            await tx.audit.add(
                f"order.{status}",
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                order_id=order.id,
                event_id=event_id,
                reason=reason,
            )
        return changed
