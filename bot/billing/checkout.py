"""Checkout Session events: the order is found from our own records and paid, failed or expired.

Rules (SPEC §6): `client_reference_id` names our order id and the session id must match the
one we stored when we created the session; metadata alone is never trusted. An event that
does not match raises EventRejected and is kept in the inbox as `failed` with the reason.
"""

from __future__ import annotations

from typing import Any

from bot.errors import EventRejected, ForeignEvent
from bot.fulfilment import Fulfilment
from bot.models import Order, OrderStatus
from bot.store import Tx
from bot.stripe_facts import parse_reference, stripe_id

PAID_STATES = ("paid", "no_payment_required")


class CheckoutEvents:
    """checkout.session.completed / async_payment_succeeded / async_payment_failed / expired."""

    def __init__(self, fulfilment: Fulfilment) -> None:
        self.fulfilment = fulfilment

    async def completed(self, tx: Tx, event: dict[str, Any], session: dict[str, Any]) -> int:
        order = await self._order_for_session(tx, session)
        if session.get("payment_status") in PAID_STATES:
            ids = self._ids(session)  # recorded with the payment: one UPDATE
            await self.fulfilment.order_paid(tx, order, event["id"], also=ids)
        else:  # a delayed payment method: async_payment_succeeded/failed follows
            await self._remember_ids(tx, order, session)
            await tx.audit.add(
                "order.awaiting_payment",
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                order_id=order.id,
                event_id=event["id"],
            )
        return order.id

    async def async_payment_succeeded(
        self, tx: Tx, event: dict[str, Any], session: dict[str, Any]
    ) -> int:
        order = await self._order_for_session(tx, session)
        await self.fulfilment.order_paid(tx, order, event["id"], also=self._ids(session))
        return order.id

    async def async_payment_failed(
        self, tx: Tx, event: dict[str, Any], session: dict[str, Any]
    ) -> int:
        order = await self._order_for_session(tx, session)
        await self.fulfilment.order_unpaid(
            tx, order, OrderStatus.FAILED, event["id"], reason="the payment failed"
        )
        return order.id

    async def expired(self, tx: Tx, event: dict[str, Any], session: dict[str, Any]) -> int:
        order = await self._order_for_session(tx, session)
        await self.fulfilment.order_unpaid(
            tx, order, OrderStatus.EXPIRED, event["id"], reason="the checkout link expired"
        )
        return order.id

    async def _order_for_session(self, tx: Tx, session: dict[str, Any]) -> Order:
        """Our order for this session, cross-checked; never trusts metadata alone."""
        session_id = session.get("id")
        reference = parse_reference(session.get("client_reference_id"))
        if reference is not None and reference[0] not in (None, tx.install_id):
            raise ForeignEvent(f"session {session_id} belongs to install {reference[0]}")
        order = None
        if reference is not None:
            order = await tx.orders.get(reference[1])
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

    @staticmethod
    def _ids(session: dict[str, Any]) -> dict[str, Any]:
        """The Stripe ids the session names (payment intent, subscription, customer)."""
        ids: dict[str, Any] = {
            "stripe_payment_intent_id": stripe_id(session.get("payment_intent")),
            "stripe_subscription_id": stripe_id(session.get("subscription")),
            "stripe_customer_id": stripe_id(session.get("customer")),
        }
        return {key: value for key, value in ids.items() if value}

    async def _remember_ids(self, tx: Tx, order: Order, session: dict[str, Any]) -> None:
        changes = self._ids(session)
        if changes:
            await tx.orders.update(order.id, **changes)
