"""The fake's storage: objects by id, the event log, the clock, prices, customers and metadata."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import FakeUsageError, invalid, no_such
from .objects import IdFactory, fresh, price_object

#: The API version the installed SDK pins (`stripe.api_version` of stripe 16.1.0).
DEFAULT_API_VERSION = "2026-10-28.endive"

Clock = Callable[[], float]
StripeObject = dict[str, Any]


class FakeClock:
    """A settable clock for tests: `clock()` returns unix seconds; `advance()` moves it."""

    def __init__(self, start: int = 1_767_225_600) -> None:
        """Start at `start` (default 2026-01-01T00:00:00Z)."""
        self.now = start

    def __call__(self) -> int:
        """The current fake time."""
        return self.now

    def advance(self, seconds: int) -> int:
        """Move forward by `seconds` and return the new time."""
        self.now += seconds
        return self.now


@dataclass
class RecordedRequest:
    """One HTTP request the fake received, with its decoded params and the status it got."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None
    request_id: str
    status: int = 0
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def validate_metadata(metadata: Any, param: str = "metadata") -> dict[str, str]:
    """Check Stripe's metadata limits (50 keys, 40-char keys, 500-char string values)."""
    if metadata in (None, ""):
        return {}
    if not isinstance(metadata, dict):
        raise invalid("Invalid object", param=param)
    if len(metadata) > 50:
        raise invalid("You can only specify up to 50 metadata keys.", param=param)
    for key, value in metadata.items():
        if len(key) > 40:
            raise invalid("Metadata keys can have up to 40 characters.", param=f"{param}[{key}]")
        if not isinstance(value, str) or len(value) > 500:
            raise invalid(
                "Metadata values must be strings of up to 500 characters.",
                param=f"{param}[{key}]",
            )
    return dict(metadata)


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Apply a metadata update the Stripe way: keys merge, `""` deletes a key, `""` clears all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in validate_metadata(update, param).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class FakeState:
    """Every object the fake knows, by id, plus the event log and helpers shared by all parts."""

    #: id prefix → (store attribute, Stripe object name), used by `expand`.
    KINDS: ClassVar[dict[str, tuple[str, str]]] = {
        "cs": ("sessions", "checkout.session"),
        "cus": ("customers", "customer"),
        "pi": ("payment_intents", "payment_intent"),
        "ch": ("charges", "charge"),
        "sub": ("subscriptions", "subscription"),
        "in": ("invoices", "invoice"),
        "inpay": ("invoice_payments", "invoice_payment"),
        "re": ("refunds", "refund"),
        "dp": ("disputes", "dispute"),
        "price": ("prices", "price"),
        "prod": ("products", "product"),
        "evt": ("events", "event"),
        "we": ("webhook_endpoints", "webhook_endpoint"),
        "bpc": ("portal_configurations", "billing_portal.configuration"),
    }

    def __init__(
        self,
        secret_key: str = "sk_test_fake",
        clock: Clock | None = None,
        *,
        api_version: str = DEFAULT_API_VERSION,
        seed: int = 0,
    ) -> None:
        """Create empty stores; `clock` returns unix seconds (default `time.time`)."""
        self.secret_key = secret_key
        self.clock: Clock = clock or time.time
        self.api_version = api_version
        self.ids = IdFactory(seed)
        self.sessions: dict[str, StripeObject] = {}
        self.customers: dict[str, StripeObject] = {}
        self.payment_intents: dict[str, StripeObject] = {}
        self.charges: dict[str, StripeObject] = {}
        self.subscriptions: dict[str, StripeObject] = {}
        self.invoices: dict[str, StripeObject] = {}
        self.invoice_payments: dict[str, StripeObject] = {}
        self.refunds: dict[str, StripeObject] = {}
        self.disputes: dict[str, StripeObject] = {}
        self.prices: dict[str, StripeObject] = {}
        self.products: dict[str, StripeObject] = {}
        self.portal_sessions: dict[str, StripeObject] = {}
        self.webhook_endpoints: dict[str, StripeObject] = {}
        #: The signing secret of each webhook endpoint (Stripe shows it only at creation).
        self.webhook_secrets: dict[str, str] = {}
        #: Customer portal configurations (`add_portal_configuration` saves one).
        self.portal_configurations: dict[str, StripeObject] = {}
        #: Events in creation order (dicts keep insertion order).
        self.events: dict[str, StripeObject] = {}
        self.requests: list[RecordedRequest] = []
        self.account = fresh("account", id="acct_" + self.ids.token(16), email="shop@example.com")
        #: Line items of each Checkout Session (Stripe returns them only when expanded).
        self.session_line_items: dict[str, list[StripeObject]] = {}
        #: The create params of each Checkout Session (`payment_intent_data`, `subscription_data`).
        self.session_params: dict[str, dict[str, Any]] = {}
        #: Set by the server while it handles a request; events created then point at it.
        self.current_request: dict[str, str | None] | None = None

    def now(self) -> int:
        """The fake's current time in whole unix seconds."""
        return int(self.clock())

    def lookup(
        self, store: dict[str, StripeObject], object_name: str, object_id: Any, param: str = "id"
    ) -> StripeObject:
        """Return the stored object or raise Stripe's 404 `resource_missing`."""
        if not isinstance(object_id, str) or object_id not in store:
            raise no_such(object_name, str(object_id), param)
        return store[object_id]

    def require(self, store: dict[str, StripeObject], object_id: str) -> StripeObject:
        """For lifecycle helpers: the stored object, or a `FakeUsageError` naming the id."""
        if object_id not in store:
            raise FakeUsageError(f"unknown id {object_id!r}")
        return store[object_id]

    def make_event(
        self,
        event_type: str,
        obj: StripeObject,
        previous_attributes: dict[str, Any] | None = None,
    ) -> StripeObject:
        """Record an event shaped like Stripe's (snapshot of `obj`) and return a copy of it."""
        event = fresh(
            "event",
            id=self.ids.new("evt"),
            api_version=self.api_version,
            created=self.now(),
            data={"object": copy.deepcopy(obj)},
            livemode=False,
            pending_webhooks=1,
            request=dict(self.current_request or {"id": None, "idempotency_key": None}),
            type=event_type,
        )
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = copy.deepcopy(previous_attributes)
        self.events[event["id"]] = event
        self._event_created(event)
        return copy.deepcopy(event)

    def _event_created(self, event: StripeObject) -> None:
        """Hook for the server (pushes new events to a webhook URL when asked to)."""

    def events_of_type(self, event_type: str) -> list[StripeObject]:
        """Stored events of one type, oldest first."""
        return [event for event in self.events.values() if event["type"] == event_type]

    def mark_delivered(self, event_id: str, succeeded: bool = True) -> None:
        """Record a webhook delivery outcome (drives `pending_webhooks` and `delivery_success`)."""
        self.require(self.events, event_id)["pending_webhooks"] = 0 if succeeded else 1

    def add_product(self, name: str, description: str | None = None) -> StripeObject:
        """Create a Product and return it."""
        product = fresh(
            "product",
            id=self.ids.new("prod", 14),
            created=self.now(),
            updated=self.now(),
            name=name,
            description=description,
            metadata={},
        )
        self.products[product["id"]] = product
        return product

    def add_price(
        self,
        unit_amount: int,
        currency: str = "usd",
        *,
        interval: str | None = None,
        interval_count: int = 1,
        product_name: str = "Test product",
        metadata: dict[str, str] | None = None,
        active: bool = True,
    ) -> StripeObject:
        """Create a Price (recurring when `interval` is given) and its Product; return the Price."""
        product = self.add_product(product_name)
        recurring = {"interval": interval, "interval_count": interval_count} if interval else None
        price = price_object(
            self.ids.new("price"),
            product_id=product["id"],
            currency=currency,
            unit_amount=unit_amount,
            recurring=recurring,
            created=self.now(),
            metadata=metadata,
            active=active,
        )
        self.prices[price["id"]] = price
        return price

    def create_customer(self, params: dict[str, Any]) -> StripeObject:
        """Create a Customer from API-style params (email, name, description, phone, metadata)."""
        customer = fresh(
            "customer",
            id=self.ids.new("cus", 14),
            created=self.now(),
            email=params.get("email") or None,
            name=params.get("name") or None,
            description=params.get("description") or None,
            phone=params.get("phone") or None,
            invoice_prefix=self.ids.token(8).upper(),
            metadata=validate_metadata(params.get("metadata")),
        )
        self.customers[customer["id"]] = customer
        self.make_event("customer.created", customer)
        return customer

    def update_customer(self, customer_id: str, params: dict[str, Any]) -> StripeObject:
        """Update a Customer's simple fields and merge its metadata; emit `customer.updated`."""
        customer = self.lookup(self.customers, "customer", customer_id)
        previous: dict[str, Any] = {}
        for key in ("email", "name", "description", "phone"):
            if key in params and customer[key] != (params[key] or None):
                previous[key] = customer[key]
                customer[key] = params[key] or None
        if "metadata" in params:
            merged = merge_metadata(customer["metadata"], params["metadata"])
            if merged != customer["metadata"]:
                previous["metadata"] = customer["metadata"]
                customer["metadata"] = merged
        if previous:
            self.make_event("customer.updated", customer, previous)
        return customer
