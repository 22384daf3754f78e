"""The REST surface: routes to handlers, list pagination and filters, and `expand`."""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

from .checkout import CheckoutOps
from .errors import invalid, missing_param, no_such, unrecognized_url
from .objects import fresh, list_object
from .state import StripeObject

Handler = Callable[[CheckoutOps, tuple[str, ...], dict[str, Any]], StripeObject]

EVENT_RETENTION = 30 * 24 * 3600

#: `GET /v1/<resource>/<id>` → (store attribute, object name for 404 messages).
RETRIEVABLE = {
    "checkout/sessions": ("sessions", "checkout.session"),
    "customers": ("customers", "customer"),
    "payment_intents": ("payment_intents", "payment_intent"),
    "charges": ("charges", "charge"),
    "invoices": ("invoices", "invoice"),
    "invoice_payments": ("invoice_payments", "invoice_payment"),
    "refunds": ("refunds", "refund"),
    "disputes": ("disputes", "dispute"),
    "prices": ("prices", "price"),
    "products": ("products", "product"),
    "subscriptions": ("subscriptions", "subscription"),
    "events": ("events", "event"),
    "webhook_endpoints": ("webhook_endpoints", "webhook_endpoint"),
    "billing_portal/configurations": ("portal_configurations", "billing_portal.configuration"),
}


def _created_matches(created: int, wanted: Any) -> bool:
    """Apply a `created` filter: an exact int or a dict of gt/gte/lt/lte."""
    if wanted in (None, ""):
        return True
    if isinstance(wanted, int):
        return created == wanted
    if not isinstance(wanted, dict) or not all(isinstance(v, int) for v in wanted.values()):
        raise invalid("Invalid created filter: use an integer or gt/gte/lt/lte.", param="created")
    checks = {
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    return all(checks[op](bound) for op, bound in wanted.items() if op in checks)


def newest_first(objects: Iterable[StripeObject]) -> list[StripeObject]:
    """Objects ordered as Stripe lists them: newest `created` first, later-made first on ties."""
    ranked = sorted(enumerate(objects), key=lambda pair: (pair[1]["created"], pair[0]))
    return [obj for _, obj in reversed(ranked)]


def paginate(objects: list[StripeObject], params: dict[str, Any], url: str) -> StripeObject:
    """One page of `objects` honouring `limit`, `starting_after` and `ending_before`."""
    limit = params.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100 (inclusive).", param="limit")
    ids = [obj["id"] for obj in objects]
    for cursor in ("starting_after", "ending_before"):
        if params.get(cursor) and params[cursor] not in ids:
            raise no_such("object", params[cursor], cursor)
    if params.get("ending_before"):
        end = ids.index(params["ending_before"])
        return list_object(objects[max(end - limit, 0) : end], url, has_more=end > limit)
    start = ids.index(params["starting_after"]) + 1 if params.get("starting_after") else 0
    page = objects[start : start + limit]
    return list_object(page, url, has_more=len(objects) > start + limit)


def _retrieve(fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]) -> StripeObject:
    """`GET /v1/<resource>/<id>` for every stored kind."""
    store_name, object_name = RETRIEVABLE[ids[0]]
    return fake.lookup(getattr(fake, store_name), object_name, ids[1])


def _list_sessions(fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]) -> StripeObject:
    """`GET /v1/checkout/sessions` filtered by customer, payment_intent, subscription, status."""
    keys = ("customer", "payment_intent", "subscription", "status")
    wanted = {key: params[key] for key in keys if params.get(key)}
    sessions = [
        session
        for session in newest_first(fake.sessions.values())
        if all(session.get(key) == value for key, value in wanted.items())
        and _created_matches(session["created"], params.get("created"))
    ]
    return paginate(sessions, params, "/v1/checkout/sessions")


def _list_line_items(
    fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]
) -> StripeObject:
    """`GET /v1/checkout/sessions/{id}/line_items`."""
    fake.lookup(fake.sessions, "checkout.session", ids[0])
    return paginate(
        fake.session_line_items[ids[0]], params, f"/v1/checkout/sessions/{ids[0]}/line_items"
    )


def _event_type_matches(event_type: str, params: dict[str, Any]) -> bool:
    """Apply `type` (with `*` wildcards) or `types[]` (exact names)."""
    if params.get("type") and params.get("types"):
        raise invalid("You may only specify one of these parameters: type, types.", param="type")
    if params.get("type"):
        return fnmatch.fnmatchcase(event_type, params["type"])
    if params.get("types"):
        types = params["types"] if isinstance(params["types"], list) else [params["types"]]
        return event_type in types
    return True


def _list_events(fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]) -> StripeObject:
    """`GET /v1/events`: the last 30 days, newest first; filters `created`, `type`, `types`,
    `delivery_success`."""
    cutoff = fake.now() - EVENT_RETENTION
    delivered = params.get("delivery_success")
    events = [
        event
        for event in newest_first(fake.events.values())
        if event["created"] >= cutoff
        and _created_matches(event["created"], params.get("created"))
        and _event_type_matches(event["type"], params)
        and (delivered in (None, "") or (event["pending_webhooks"] == 0) == delivered)
    ]
    return paginate(events, params, "/v1/events")


INVOICE_PAYMENT_STATUSES = ("canceled", "open", "paid")
PAYMENT_TYPES = ("payment_intent", "payment_record")


def _list_invoice_payments(
    fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]
) -> StripeObject:
    """`GET /v1/invoice_payments`, newest first, filtered by `invoice`, `payment` (its `type`
    is required: `payment_intent` with `payment[payment_intent]`, or `payment_record`),
    `status` and `created`."""
    invoice = params.get("invoice")
    payment = params.get("payment")
    if payment is not None and not isinstance(payment, dict):
        raise invalid("Invalid object", param="payment")
    payment = payment or {}
    if payment and not payment.get("type"):
        raise missing_param("payment[type]")
    if payment and payment["type"] not in PAYMENT_TYPES:
        raise invalid(
            "Invalid payment[type]: must be one of payment_intent or payment_record",
            param="payment[type]",
        )
    status = params.get("status")
    if status and status not in INVOICE_PAYMENT_STATUSES:
        raise invalid("Invalid status: must be one of canceled, open, or paid", param="status")
    wanted_type = payment.get("type")
    intent = payment.get("payment_intent")
    payments = [
        item
        for item in newest_first(fake.invoice_payments.values())
        if (not invoice or item["invoice"] == invoice)
        and (not wanted_type or item["payment"]["type"] == wanted_type)
        and (not intent or item["payment"].get("payment_intent") == intent)
        and (not status or item["status"] == status)
        and _created_matches(item["created"], params.get("created"))
    ]
    return paginate(payments, params, "/v1/invoice_payments")


def _list_webhook_endpoints(
    fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]
) -> StripeObject:
    """`GET /v1/webhook_endpoints`, newest first; the signing secrets are never listed."""
    return paginate(newest_first(fake.webhook_endpoints.values()), params, "/v1/webhook_endpoints")


def _list_portal_configurations(
    fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]
) -> StripeObject:
    """`GET /v1/billing_portal/configurations` filtered by `active` and `is_default`."""
    wanted = {key: params[key] for key in ("active", "is_default") if key in params}
    for key, value in wanted.items():
        if not isinstance(value, bool):
            raise invalid(f"Invalid boolean: {value}", param=key)
    configurations = [
        configuration
        for configuration in newest_first(fake.portal_configurations.values())
        if all(configuration[key] == value for key, value in wanted.items())
    ]
    return paginate(configurations, params, "/v1/billing_portal/configurations")


def _create_portal_session(
    fake: CheckoutOps, ids: tuple[str, ...], params: dict[str, Any]
) -> StripeObject:
    """`POST /v1/billing_portal/sessions`: a short-lived portal URL for a customer."""
    if not params.get("customer"):
        raise missing_param("customer")
    fake.lookup(fake.customers, "customer", params["customer"], "customer")
    session = fresh(
        "billing_portal.session",
        id=fake.ids.new("bps"),
        configuration=params.get("configuration") or "bpc_" + fake.ids.token(24),
        created=fake.now(),
        customer=params["customer"],
        locale=params.get("locale") or None,
        return_url=params.get("return_url") or None,
        url=f"https://billing.stripe.com/p/session/test_{fake.ids.token(48)}",
    )
    fake.portal_sessions[session["id"]] = session
    return session


def _p(pattern: str) -> re.Pattern[str]:
    """Compile a full-path route pattern."""
    return re.compile(f"^{pattern}$")


_ID = "([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", _p("/v1/checkout/sessions"), lambda f, i, p: f.create_checkout_session(p)),
    ("GET", _p("/v1/checkout/sessions"), _list_sessions),
    ("POST", _p(f"/v1/checkout/sessions/{_ID}/expire"), lambda f, i, p: f.api_expire_session(i[0])),
    ("GET", _p(f"/v1/checkout/sessions/{_ID}/line_items"), _list_line_items),
    ("POST", _p("/v1/customers"), lambda f, i, p: f.create_customer(p)),
    ("POST", _p(f"/v1/customers/{_ID}"), lambda f, i, p: f.update_customer(i[0], p)),
    ("POST", _p("/v1/billing_portal/sessions"), _create_portal_session),
    ("POST", _p("/v1/refunds"), lambda f, i, p: f.create_refund(p)[0]),
    ("POST", _p(f"/v1/subscriptions/{_ID}"), lambda f, i, p: f.api_update_subscription(i[0], p)),
    ("DELETE", _p(f"/v1/subscriptions/{_ID}"), lambda f, i, p: f.api_cancel_subscription(i[0])),
    ("GET", _p("/v1/events"), _list_events),
    ("GET", _p("/v1/invoice_payments"), _list_invoice_payments),
    ("GET", _p("/v1/account"), lambda f, i, p: f.account),
    ("POST", _p("/v1/webhook_endpoints"), lambda f, i, p: f.create_webhook_endpoint(p)),
    ("GET", _p("/v1/webhook_endpoints"), _list_webhook_endpoints),
    (
        "POST",
        _p(f"/v1/webhook_endpoints/{_ID}"),
        lambda f, i, p: f.update_webhook_endpoint(i[0], p),
    ),
    ("DELETE", _p(f"/v1/webhook_endpoints/{_ID}"), lambda f, i, p: f.delete_webhook_endpoint(i[0])),
    ("GET", _p("/v1/billing_portal/configurations"), _list_portal_configurations),
    ("GET", _p(f"/v1/({'|'.join(map(re.escape, RETRIEVABLE))})/{_ID}"), _retrieve),
]


def route(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    """Find the handler for a request, or raise Stripe's "Unrecognized request URL"."""
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, match.groups()
    raise unrecognized_url(method, path)


def expand(fake: CheckoutOps, obj: StripeObject, paths: list[str]) -> StripeObject:
    """Return a copy of `obj` with `expand[]` paths (`payment_intent`, `data.customer`,
    `line_items`, `latest_invoice.lines`…) replaced by the objects they name."""
    result = copy.deepcopy(obj)
    for path in paths:
        _expand_path(fake, result, path.split("."), path)
    return result


def _expand_path(fake: CheckoutOps, node: Any, parts: list[str], path: str) -> None:
    """Expand one dotted path in place."""
    if not parts or not isinstance(node, dict):
        return
    key, rest = parts[0], parts[1:]
    if key == "data" and isinstance(node.get("data"), list):
        for item in node["data"]:
            _expand_path(fake, item, rest, path)
        return
    if key == "line_items" and node.get("object") == "checkout.session":
        node[key] = copy.deepcopy(_list_line_items(fake, (node["id"],), {"limit": 100}))
    elif key not in node:
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    value = node[key]
    if isinstance(value, str) and "_" in value:
        store_name = fake.KINDS.get(value.split("_", 1)[0], ("", ""))[0]
        store = getattr(fake, store_name, {}) if store_name else {}
        if value in store:
            node[key] = copy.deepcopy(store[value])
    _expand_path(fake, node[key], rest, path)
