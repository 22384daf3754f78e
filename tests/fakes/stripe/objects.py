"""Stripe objects built from Stripe's own fixtures: load once, deep-copy, reset fixture noise."""

from __future__ import annotations

import copy
import functools
import json
import random
import string
from pathlib import Path
from typing import Any

FIXTURES_FILE = Path(__file__).with_name("stripe_fixtures.json")

_NO_AUTOMATIC_TAX = {"enabled": False, "liability": None, "status": None, "provider": None}

#: Fields whose fixture values are placeholders (huge random integers, other objects' ids,
#: options this shop never uses). They are reset to what a fresh test-mode object has.
_RESETS: dict[str, dict[str, Any]] = {
    "checkout.session": {
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "automatic_tax": _NO_AUTOMATIC_TAX,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "currency_conversion": None,
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_details": None,
        "invoice_creation": None,
        "managed_payments": None,
        "payment_intent": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "permissions": None,
        "saved_payment_method_options": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    },
    "customer": {"discount": None, "currency": None, "shipping": None},
    "payment_intent": {
        "canceled_at": None,
        "last_payment_error": None,
        "managed_payments": None,
        "next_action": None,
        "payment_method_configuration_details": None,
        "processing": None,
        "shipping": None,
        "transfer_data": None,
    },
    "charge": {
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "description": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "shipping": None,
        "source": None,
        "transfer_data": None,
    },
    "subscription": {
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor_config": None,
        "billing_schedules": [],
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "managed_payments": None,
        "next_pending_invoice_item_invoice": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_update": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_start": None,
    },
    "subscription_item": {"billing_thresholds": None},
    "invoice": {
        "amount_overpaid": 0,
        "automatic_tax": _NO_AUTOMATIC_TAX | {"disabled_reason": None},
        "customer_shipping": None,
        "due_date": None,
        "from_invoice": None,
        "last_finalization_error": None,
        "next_payment_attempt": None,
        "shipping_cost": None,
        "shipping_details": None,
        "webhooks_delivered_at": None,
    },
    "line_item": {"pretax_credit_amounts": [], "taxes": []},
    "price": {"transform_quantity": None},
    "product": {"default_price": None, "package_dimensions": None},
    "dispute": {"enhanced_eligibility_types": []},
    "billing_portal.session": {"flow": None, "livemode": False},
    "billing_portal.configuration": {"application": None, "default_return_url": None},
    "webhook_endpoint": {"application": None, "description": None, "metadata": {}},
    "account": {"charges_enabled": True, "details_submitted": True, "payouts_enabled": True},
    "item": {"adjustable_quantity": None},
}


@functools.cache
def _resources() -> dict[str, Any]:
    """Read the fixture file once per process."""
    with FIXTURES_FILE.open(encoding="utf-8") as handle:
        return json.load(handle)["resources"]


def fresh(object_type: str, **fields: Any) -> dict[str, Any]:
    """Return a new object of `object_type`: the fixture, reset (see `_RESETS`), then `fields`."""
    obj = copy.deepcopy(_resources()[object_type])
    obj.update(copy.deepcopy(_RESETS.get(object_type, {})))
    obj.update(fields)
    return obj


def list_object(data: list[dict[str, Any]], url: str, *, has_more: bool = False) -> dict[str, Any]:
    """A Stripe list envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


class IdFactory:
    """Stripe-looking ids (`cus_…`, `cs_test_…`) from a seeded generator, so runs repeat."""

    _ALPHABET = string.ascii_letters + string.digits

    def __init__(self, seed: int = 0) -> None:
        """Start the sequence at `seed`."""
        self._random = random.Random(seed)

    def token(self, length: int = 24) -> str:
        """A random alphanumeric string."""
        return "".join(self._random.choice(self._ALPHABET) for _ in range(length))

    def new(self, prefix: str, length: int = 24) -> str:
        """A new id such as `pi_3Xy…`; `prefix` is given without the underscore."""
        return f"{prefix}_{self.token(length)}"


def price_object(
    price_id: str,
    *,
    product_id: str,
    currency: str,
    unit_amount: int,
    recurring: dict[str, Any] | None,
    created: int,
    metadata: dict[str, str] | None = None,
    active: bool = True,
) -> dict[str, Any]:
    """A Price; `recurring` is `{"interval": "month", "interval_count": 1, ...}` or None."""
    if recurring is not None:
        recurring = {
            "interval": recurring["interval"],
            "interval_count": int(recurring.get("interval_count") or 1),
            "meter": None,
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": "licensed",
        }
    return fresh(
        "price",
        id=price_id,
        active=active,
        created=created,
        currency=currency.lower(),
        metadata=dict(metadata or {}),
        product=product_id,
        recurring=recurring,
        type="recurring" if recurring else "one_time",
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
    )


def plan_from_price(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy `plan` mirror of a recurring Price, as found on subscription items."""
    recurring = price["recurring"] or {}
    return {
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "id": price["id"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": dict(price["metadata"]),
        "meter": None,
        "nickname": None,
        "object": "plan",
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
