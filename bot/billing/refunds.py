"""Refunds and disputes: a full refund or a chargeback of a payment ends what it paid for.

Where a refund takes a role away: `charge_refunded` records the reversal under the payment
intent and settles the order; `Lifecycle.settle` marks it refunded and calls `Access.end`
with REFUND, which asks the planner for the revocations (`Planner.revocations`, the ledger
rule); the worker's `revoke_role` job removes the role (bot/delivery.py). A reversal seen
before the order is paid waits and applies when it is (`Lifecycle.catch_up`).
"""

from __future__ import annotations

from typing import Any

from bot.lifecycle import Lifecycle
from bot.models import Order
from bot.store import Tx
from bot.stripe_facts import stripe_id


class RefundEvents:
    """charge.refunded / charge.dispute.created."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    async def charge_refunded(
        self, tx: Tx, event: dict[str, Any], charge: dict[str, Any]
    ) -> int | None:
        """Fully refunded → access ends (on_refund); a partial refund is only recorded."""
        payment_intent = stripe_id(charge.get("payment_intent"))
        if payment_intent is None:
            return None
        order = await tx.orders.by_payment_intent(payment_intent)
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
        await self.lifecycle.settle(tx, order)
        return order.id
