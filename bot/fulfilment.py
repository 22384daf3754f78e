"""Turning verified Stripe events into order state, entitlements and delivery jobs.

Rules (SPEC §6): the order is found from our own records — `client_reference_id` names our
order id and the session id must match the one we stored when we created the session. An
event that does not match is kept in the inbox as `failed` with the reason, never applied.
Every state change is compare-and-set on the order status, so a duplicate or late event
changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from typing import Any

from bot.config import Settings
from bot.lifecycle import Lifecycle
from bot.models import Kind, Order, OrderStatus, Product, Stage
from bot.shop import new_claim_code
from bot.store import Tx
from bot.stripe_facts import stripe_id

log = logging.getLogger(__name__)

PAID_STATES = ("paid", "no_payment_required")


class EventRejected(Exception):
    """The event is authentic but cannot be applied (unknown order, mismatch)."""


class Fulfilment:
    """Applies one event inside the caller's transaction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle(settings, self)

    async def apply(self, tx: Tx, event: dict[str, Any]) -> tuple[str, int | None]:
        """Apply the event; return (inbox status, order id). Raises EventRejected."""
        kind = event["type"]
        obj = event["data"]["object"]
        if kind == "checkout.session.completed":
            order = await self._order_for_session(tx, obj)
            if obj.get("payment_status") in PAID_STATES:
                await self.mark_paid(tx, order, obj, event["id"])
            else:
                await self._remember_ids(tx, order, obj)
                await tx.audit.add(
                    "order.awaiting_payment",
                    guild_id=order.guild_id,
                    user_id=order.recipient_id,
                    order_id=order.id,
                    event_id=event["id"],
                )
            return "processed", order.id
        if kind == "checkout.session.async_payment_succeeded":
            order = await self._order_for_session(tx, obj)
            await self.mark_paid(tx, order, obj, event["id"])
            return "processed", order.id
        if kind == "checkout.session.async_payment_failed":
            order = await self._order_for_session(tx, obj)
            await self._close_unpaid(
                tx, order, OrderStatus.FAILED, event["id"], reason="the payment failed"
            )
            return "processed", order.id
        if kind == "checkout.session.expired":
            order = await self._order_for_session(tx, obj)
            await self._close_unpaid(
                tx, order, OrderStatus.EXPIRED, event["id"], reason="the checkout link expired"
            )
            return "processed", order.id
        return await self.lifecycle.apply(tx, event)

    async def _order_for_session(self, tx: Tx, session: dict[str, Any]) -> Order:
        """Our order for this session, cross-checked; never trusts metadata alone."""
        session_id = session.get("id")
        reference = session.get("client_reference_id")
        order = None
        if isinstance(reference, str) and reference.isdigit():
            order = await tx.orders.get(int(reference))
        if order is None and isinstance(session_id, str):
            order = await tx.orders.by_session(session_id)
        if order is None:
            raise EventRejected(f"no order of ours matches session {session_id}")
        if order.stripe_session_id is None:
            # Crash between creating the session and saving its id: adopt it only if no
            # other order owns that session and the amount and currency agree.
            other = await tx.orders.by_session(str(session_id))
            amount_ok = session.get("amount_total") in (None, order.amount)
            currency_ok = str(session.get("currency") or order.currency).lower() == order.currency
            if other is not None or not (amount_ok and currency_ok):
                raise EventRejected(f"session {session_id} does not match order {order.id}")
            await tx.orders.update(order.id, stripe_session_id=session_id)
        elif order.stripe_session_id != session_id:
            raise EventRejected(f"session {session_id} does not match order {order.id}'s session")
        return order

    async def _remember_ids(self, tx: Tx, order: Order, session: dict[str, Any]) -> None:
        ids: dict[str, Any] = {
            "stripe_payment_intent_id": stripe_id(session.get("payment_intent")),
            "stripe_subscription_id": stripe_id(session.get("subscription")),
            "stripe_customer_id": stripe_id(session.get("customer")),
        }
        changes = {key: value for key, value in ids.items() if value}
        if changes:
            await tx.orders.update(order.id, **changes)

    async def mark_paid(self, tx: Tx, order: Order, session: dict[str, Any], event_id: str) -> bool:
        """pending/expired/failed → paid, with claim code, entitlement and jobs; once only."""
        await self._remember_ids(tx, order, session)
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
            except sqlite3.IntegrityError:  # claim code collision: draw another
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
        await self.queue_stage(tx, order, product, user_id, entitlement.id, Stage.ON_PURCHASE)
        await self.lifecycle.catch_up(tx, order.id)  # events that arrived before this one

    async def queue_stage(
        self,
        tx: Tx,
        order: Order | None,
        product: Product,
        user_id: int,
        entitlement_id: int | None,
        stage: str,
        cycle: int = 0,
    ) -> int:
        """Queue one job per live action of `stage`; the receipt follows when they are done.

        Without an order (access given by hand) the jobs are keyed by the entitlement and
        no receipt follows. `cycle` > 0 (access restored after a lapse) gives fresh keys.
        """
        suffix = f":c{cycle}" if cycle else ""
        owner = f"order:{order.id}" if order else f"entitlement:{entitlement_id}"
        expires = tx.now + timedelta(hours=self.settings.shop.claim_expiry_hours)
        queued = 0
        for action in await tx.products.actions(product.id, stage):
            job_id = await tx.jobs.enqueue(
                guild_id=product.guild_id,
                user_id=user_id,
                kind=action.type,
                order_id=order.id if order else None,
                entitlement_id=entitlement_id,
                action_id=action.id,
                dedupe_key=f"{owner}:{stage}:action:{action.id}{suffix}",
                payload={
                    "role_id": action.role_id,
                    "channel_id": action.channel_id,
                    "message": action.message,
                    "stage": stage,
                },
                expires_at=expires,
            )
            queued += job_id is not None
        if stage == Stage.ON_PURCHASE and queued == 0 and order is not None:
            await queue_receipt(tx, order)
        return queued

    async def _close_unpaid(
        self, tx: Tx, order: Order, status: str, event_id: str, reason: str
    ) -> None:
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


async def queue_receipt(tx: Tx, order: Order) -> None:
    """Queue the buyer's DM receipt (once per order, whatever calls this)."""
    await tx.jobs.enqueue(
        guild_id=order.guild_id,
        user_id=order.buyer_id,
        kind="receipt",
        order_id=order.id,
        dedupe_key=f"order:{order.id}:receipt",
        payload={},
    )
