"""The webhook dispatcher: one table from Stripe event type to the handler that applies it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.billing.checkout import CheckoutEvents
from bot.billing.refunds import RefundEvents
from bot.billing.subscriptions import SubscriptionEvents
from bot.errors import EventRejected, ForeignEvent
from bot.store import Tx

__all__ = ["Dispatcher", "EventRejected", "Handler"]

#: A handler records the event's effect in `tx` and returns the id of the order it concerns.
Handler = Callable[[Tx, dict[str, Any], dict[str, Any]], Awaitable[int | None]]


class Dispatcher:
    """Applies one verified event inside the caller's transaction (bot/inbox.py)."""

    def __init__(
        self, checkout: CheckoutEvents, subscriptions: SubscriptionEvents, refunds: RefundEvents
    ) -> None:
        self.handlers: dict[str, Handler] = {
            "checkout.session.completed": checkout.completed,
            "checkout.session.async_payment_succeeded": checkout.async_payment_succeeded,
            "checkout.session.async_payment_failed": checkout.async_payment_failed,
            "checkout.session.expired": checkout.expired,
            "invoice.paid": subscriptions.invoice_paid,
            "invoice.payment_failed": subscriptions.invoice_payment_failed,
            "customer.subscription.created": subscriptions.subscription_changed,
            "customer.subscription.updated": subscriptions.subscription_changed,
            "customer.subscription.deleted": subscriptions.subscription_changed,
            "charge.refunded": refunds.charge_refunded,
            "charge.dispute.created": refunds.dispute_created,
        }

    @property
    def event_types(self) -> list[str]:
        """Every event type shopbot acts on (what a webhook endpoint must subscribe to)."""
        return sorted(self.handlers)

    async def apply(self, tx: Tx, event: dict[str, Any]) -> tuple[str, int | None]:
        """Apply the event; return (inbox status, order id). Raises EventRejected."""
        handler = self.handlers.get(event["type"])
        if handler is None:
            return "ignored", None
        try:
            return "processed", await handler(tx, event, event["data"]["object"])
        except ForeignEvent:
            return "ignored", None
