"""Reading Stripe event objects: ids, invoice periods, and folding in subscription events."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.models import Subscription

TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})


def merge_subscription(
    current: Subscription, obj: dict[str, Any], event: dict[str, Any]
) -> Subscription:
    """Fold one customer.subscription.* event into what we know (see the ordering rule)."""
    version = (int(event["created"]), str(event["id"]))
    newer = version > (current.last_event_created, current.last_event_id)
    changes: dict[str, Any] = {}
    items = (obj.get("items") or {}).get("data") or []
    ends = [i["current_period_end"] for i in items if isinstance(i.get("current_period_end"), int)]
    if ends:
        period_end = from_unix(max(ends))
        if current.current_period_end is None or period_end > current.current_period_end:
            changes["current_period_end"] = period_end
    status = obj.get("status")
    terminal = status in TERMINAL_STATUSES
    if terminal:
        ended_at = from_unix(obj.get("ended_at") or event["created"])
        if current.ended_at is None or ended_at < current.ended_at:
            changes["ended_at"] = ended_at
    ended = current.ended_at is not None
    if (terminal and not ended) or (newer and (terminal or not ended)):
        changes["status"] = status
        changes["cancel_at_period_end"] = bool(obj.get("cancel_at_period_end"))
    if newer:  # the version only grows, whether or not the status could be applied
        changes["last_event_created"], changes["last_event_id"] = version
    return current.replace(**changes) if changes else current


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills (top level, or under `parent` in newer versions)."""
    found = stripe_id(invoice.get("subscription"))
    if found is None:
        details = (invoice.get("parent") or {}).get("subscription_details") or {}
        found = stripe_id(details.get("subscription"))
    return found


def invoice_period_end(invoice: dict[str, Any]) -> datetime | None:
    """The end of the service period an invoice pays for: the latest line `period.end`."""
    lines = (invoice.get("lines") or {}).get("data") or []
    ends = [(line.get("period") or {}).get("end") for line in lines]
    valid = [end for end in ends if isinstance(end, int)]
    return from_unix(max(valid)) if valid else None


def invoice_paid_at(invoice: dict[str, Any], event: dict[str, Any]) -> datetime:
    """When an invoice was paid: `status_transitions.paid_at`, else the event's time."""
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    return from_unix(paid_at if isinstance(paid_at, int) else event["created"])


#: Event types that reverse a payment: a refund (a Charge) or a dispute.
REVERSAL_EVENTS = frozenset({"charge.refunded", "charge.dispute.created"})


def reversed_payment(obj: dict[str, Any]) -> str | None:
    """The payment intent a refunded Charge or a Dispute is about."""
    found = stripe_id(obj.get("payment_intent"))
    charge = obj.get("charge")
    if found is None and isinstance(charge, dict):  # a dispute with its charge expanded
        found = stripe_id(charge.get("payment_intent"))
    return found


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def stripe_id(value: Any) -> str | None:
    """Stripe fields hold an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


_REFERENCE = re.compile(r"(?:([0-9a-f]{16})-)?([0-9]{1,18})")


def order_reference(install_id: str, order_id: int) -> str:
    """`client_reference_id` of our Checkout Sessions: `<install id>-<order id>`."""
    return f"{install_id}-{order_id}"


def parse_reference(value: Any) -> tuple[str | None, int] | None:
    """(install id, order id) from a `client_reference_id`; the install id is None for
    sessions made before install ids existed (a bare order id). None: not one of ours."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.fullmatch(value)
    return None if match is None else (match[1], int(match[2]))
