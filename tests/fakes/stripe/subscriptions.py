"""Subscriptions: creation, renewal, failed payments and retries, updates, cancellation."""

from __future__ import annotations

import calendar
import copy
from datetime import UTC, datetime
from typing import Any

from .errors import FakeUsageError, invalid, no_such
from .invoices import InvoiceOps
from .objects import fresh, list_object, plan_from_price
from .state import StripeObject, merge_metadata

DAY = 24 * 3600
UPDATABLE = frozenset({"cancel_at_period_end", "cancel_at", "description", "metadata"})


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    """`timestamp` plus `count` days/weeks/months/years (months clamp to the month's last day)."""
    if interval in ("day", "week"):
        return timestamp + count * DAY * (7 if interval == "week" else 1)
    start = datetime.fromtimestamp(timestamp, tz=UTC)
    months = start.month - 1 + count * (12 if interval == "year" else 1)
    year, month = start.year + months // 12, months % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


class SubscriptionOps(InvoiceOps):
    """Subscriptions with one item; periods live on `items.data[0]` (this API version)."""

    def create_subscription(
        self,
        *,
        customer_id: str,
        price: StripeObject,
        quantity: int,
        metadata: dict[str, str],
        trial_period_days: int | None = None,
    ) -> tuple[StripeObject, StripeObject]:
        """Start a subscription with its first (paid) invoice; emits its events."""
        now, sub_id = self.now(), self.ids.new("sub")
        recurring = price["recurring"]
        trial_end = now + trial_period_days * DAY if trial_period_days else None
        period_end = trial_end or add_interval(
            now, recurring["interval"], recurring["interval_count"]
        )
        item = fresh(
            "subscription_item",
            id=self.ids.new("si", 14),
            created=now,
            current_period_start=now,
            current_period_end=period_end,
            discounts=[],
            metadata={},
            plan=plan_from_price(price),
            price=copy.deepcopy(price),
            quantity=quantity,
            subscription=sub_id,
            tax_rates=[],
        )
        sub = fresh(
            "subscription",
            id=sub_id,
            billing_cycle_anchor=period_end if trial_end else now,
            created=now,
            currency=price["currency"],
            customer=customer_id,
            description=None,
            items=list_object([item], f"/v1/subscription_items?subscription={sub_id}"),
            metadata=dict(metadata),
            start_date=now,
            status="trialing" if trial_end else "active",
            trial_end=trial_end,
            trial_start=now if trial_end else None,
        )
        self.subscriptions[sub_id] = sub
        invoice = self._bill(sub, "subscription_create", (now, now), zero=trial_end is not None)
        self.make_event("customer.subscription.created", sub)
        self._invoice_events(invoice)
        return sub, invoice

    def _start_next_period(self, sub: StripeObject, outcome: str) -> StripeObject:
        """Advance the item to its next period, bill it, emit the update and invoice events."""
        previous: dict[str, Any] = {
            "items": copy.deepcopy(sub["items"]),
            "latest_invoice": sub["latest_invoice"],
        }
        item = sub["items"]["data"][0]
        recurring = item["price"]["recurring"]
        ended = (item["current_period_start"], item["current_period_end"])
        item["current_period_start"] = ended[1]
        item["current_period_end"] = add_interval(
            ended[1], recurring["interval"], recurring["interval_count"]
        )
        invoice = self._bill(sub, "subscription_cycle", ended, outcome=outcome)
        status = "active" if outcome == "succeeded" else "past_due"
        if sub["status"] != status:
            previous["status"] = sub["status"]
            sub["status"] = status
        self.make_event("customer.subscription.updated", sub, previous)
        return self._invoice_events(invoice)

    def _live_subscription(self, sub_id: str) -> StripeObject:
        """The subscription, refusing canceled ones."""
        sub = self.require(self.subscriptions, sub_id)
        if sub["status"] == "canceled":
            raise FakeUsageError(f"{sub_id} is canceled")
        return sub

    def renew_subscription(self, sub_id: str) -> StripeObject:
        """Start the next period and pay it; return `invoice.paid`.

        A subscription set to cancel at period end is deleted instead (that event is returned).
        """
        sub = self._live_subscription(sub_id)
        if sub["cancel_at_period_end"]:
            return self._end_subscription(sub)
        return self._start_next_period(sub, "succeeded")

    def fail_invoice(self, sub_id: str) -> StripeObject:
        """A renewal whose payment fails (or, if the latest invoice is already open, a failed
        retry): status `past_due`; return `invoice.payment_failed`."""
        sub = self._live_subscription(sub_id)
        invoice = self.invoices[sub["latest_invoice"]]
        if invoice["status"] != "open":
            return self._start_next_period(sub, "failed")
        self.retry_payment(self._invoice_intent(invoice["id"]), succeeded=False)
        self._mark_invoice(invoice, paid=False)
        return self._invoice_events(invoice)

    def pay_invoice(self, invoice_id: str) -> StripeObject:
        """A successful retry of an open invoice; the subscription becomes active again.
        Returns `invoice.paid`."""
        invoice = self.require(self.invoices, invoice_id)
        if invoice["status"] != "open":
            raise FakeUsageError(f"{invoice_id} is {invoice['status']}, not open")
        self.retry_payment(self._invoice_intent(invoice_id), succeeded=True)
        self._mark_invoice(invoice, paid=True)
        sub = self.subscriptions[invoice["subscription"]]
        if sub["status"] in ("past_due", "unpaid"):
            self.update_subscription(sub["id"], status="active")
        return self._invoice_events(invoice)

    def _apply_changes(self, sub: StripeObject, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply field changes; return Stripe's `previous_attributes` for them."""
        previous: dict[str, Any] = {}
        item = sub["items"]["data"][0]
        for key, value in changes.items():
            if key in ("current_period_start", "current_period_end"):
                previous.setdefault("items", copy.deepcopy(sub["items"]))
                item[key] = value
            elif key == "metadata":
                previous["metadata"] = sub["metadata"]
                sub["metadata"] = merge_metadata(sub["metadata"], value)
            elif key == "cancel_at_period_end":
                fields = ("cancel_at_period_end", "cancel_at", "canceled_at")
                previous.update({field: sub[field] for field in fields})
                sub["cancel_at_period_end"] = bool(value)
                sub["cancel_at"] = item["current_period_end"] if value else None
                sub["canceled_at"] = self.now() if value else None
            elif key in sub:
                previous[key] = sub[key]
                sub[key] = value
            else:
                raise FakeUsageError(f"subscriptions have no field {key!r}")
        return previous

    def update_subscription(self, sub_id: str, **changes: Any) -> StripeObject:
        """Change fields (also `current_period_end` on the item); return `.updated` with
        `previous_attributes`."""
        sub = self.require(self.subscriptions, sub_id)
        previous = self._apply_changes(sub, changes)
        return self.make_event("customer.subscription.updated", sub, previous)

    def api_update_subscription(self, sub_id: str, params: dict[str, Any]) -> StripeObject:
        """`POST /v1/subscriptions/{id}` for the fields a shop changes."""
        sub = self.lookup(self.subscriptions, "subscription", sub_id)
        for key in params:
            if key not in UPDATABLE:
                raise invalid(f"Received unknown parameter: {key}", param=key)
        if sub["status"] == "canceled" and set(params) - {"metadata"}:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        changes = {key: value for key, value in params.items() if key != "cancel_at" or value != ""}
        previous = self._apply_changes(sub, changes)
        if previous:
            self.make_event("customer.subscription.updated", sub, previous)
        return sub

    def _end_subscription(self, sub: StripeObject) -> StripeObject:
        """Cancel now: status `canceled`; return `customer.subscription.deleted`."""
        now = self.now()
        sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now)
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        return self.make_event("customer.subscription.deleted", sub)

    def cancel_subscription(self, sub_id: str, at_period_end: bool = False) -> StripeObject:
        """Cancel now (`.deleted`) or at period end (`.updated` with `cancel_at_period_end`)."""
        sub = self._live_subscription(sub_id)
        if at_period_end:
            return self.update_subscription(sub_id, cancel_at_period_end=True)
        return self._end_subscription(sub)

    def api_cancel_subscription(self, sub_id: str) -> StripeObject:
        """`DELETE /v1/subscriptions/{id}`. A canceled subscription is gone as far as cancel
        is concerned: Stripe answers 404 "No such subscription" (stripe/stripe-go#1887)."""
        sub = self.lookup(self.subscriptions, "subscription", sub_id)
        if sub["status"] == "canceled":
            raise no_such("subscription", sub_id)
        self._end_subscription(sub)
        return sub
