"""Validation of Checkout Session create params and resolution of their line items."""

from __future__ import annotations

import copy
from typing import Any

from .errors import invalid, missing_param
from .objects import fresh, price_object
from .state import StripeObject, validate_metadata
from .subscriptions import SubscriptionOps

MIN_EXPIRY, MAX_EXPIRY = 30 * 60, 24 * 3600
DEFAULT_EXPIRY = MAX_EXPIRY
INTERVALS = ("day", "week", "month", "year")
#: Create params the fake understands or tolerates; anything else is a 400 like Stripe's.
KNOWN_PARAMS = frozenset(
    {
        "allow_promotion_codes", "billing_address_collection", "cancel_url",
        "client_reference_id", "consent_collection", "currency", "custom_text", "customer",
        "customer_creation", "customer_email", "customer_update", "discounts", "expires_at",
        "invoice_creation", "line_items", "locale", "metadata", "mode", "payment_intent_data",
        "payment_method_collection", "payment_method_types", "phone_number_collection",
        "return_url", "submit_type", "subscription_data", "success_url", "ui_mode",
    }
)  # fmt: skip


def _is_url(value: Any) -> bool:
    """Whether `value` looks like an absolute http(s) URL."""
    return isinstance(value, str) and value.startswith(("https://", "http://"))


class CheckoutValidation(SubscriptionOps):
    """Checks a create request the way Stripe does, answering 400s with the offending `param`."""

    def _checkout_price(self, line: dict[str, Any], param: str) -> StripeObject:
        """The Price for one line item: an existing `price`, or one made from `price_data`."""
        if line.get("price") and line.get("price_data"):
            raise invalid("You may only specify one of these parameters: price, price_data.", param)
        if line.get("price"):
            price = self.lookup(self.prices, "price", line["price"], f"{param}[price]")
            if not price["active"]:
                raise invalid(
                    "The price specified is inactive. This field only accepts active prices.",
                    param=f"{param}[price]",
                )
            return price
        data = line.get("price_data")
        if not isinstance(data, dict):
            raise invalid(
                "You must specify either `price` or `price_data` for each line item.", param
            )
        param = f"{param}[price_data]"
        for key in ("currency", "unit_amount"):
            if data.get(key) in (None, ""):
                raise missing_param(f"{param}[{key}]")
        if not isinstance(data["unit_amount"], int) or data["unit_amount"] < 0:
            raise invalid("Invalid non-negative integer", param=f"{param}[unit_amount]")
        recurring = data.get("recurring") or None
        if recurring is not None and recurring.get("interval") not in INTERVALS:
            raise invalid(
                "Invalid interval: must be one of day, month, week, or year",
                param=f"{param}[recurring][interval]",
            )
        if data.get("product"):
            product = self.lookup(self.products, "product", data["product"], f"{param}[product]")
        else:
            product_data = data.get("product_data") or {}
            if not product_data.get("name"):
                raise missing_param(f"{param}[product_data][name]")
            product = self.add_product(product_data["name"], product_data.get("description"))
        price = price_object(
            self.ids.new("price"),
            product_id=product["id"],
            currency=data["currency"],
            unit_amount=data["unit_amount"],
            recurring=recurring,
            created=self.now(),
            active=False,
        )
        self.prices[price["id"]] = price
        return price

    def _line_items(self, params: dict[str, Any], mode: str) -> list[StripeObject]:
        """Validate `line_items` and return them as Checkout `item` objects."""
        lines = params.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise invalid(f"`line_items` is required in `{mode}` mode.", param="line_items")
        items = []
        for index, line in enumerate(lines):
            param = f"line_items[{index}]"
            price = self._checkout_price(line if isinstance(line, dict) else {}, param)
            quantity = line.get("quantity") if isinstance(line, dict) else None
            if quantity is None:
                raise invalid(
                    f"Quantity is required. Add `quantity` to `{param}`", f"{param}[quantity]"
                )
            if not isinstance(quantity, int) or quantity < 1:
                raise invalid("Invalid positive integer", param=f"{param}[quantity]")
            if mode == "payment" and price["recurring"]:
                raise invalid(
                    "You specified `payment` mode but passed a recurring price. Either switch "
                    "to `subscription` mode or use only one-time prices.",
                    param=f"{param}[price]",
                )
            subtotal = price["unit_amount"] * quantity
            product = self.products.get(price["product"], {})
            items.append(
                fresh(
                    "item",
                    id=self.ids.new("li"),
                    amount_discount=0,
                    amount_subtotal=subtotal,
                    amount_tax=0,
                    amount_total=subtotal,
                    currency=price["currency"],
                    description=product.get("name"),
                    metadata={},
                    price=copy.deepcopy(price),
                    quantity=quantity,
                )
            )
        if len({item["currency"] for item in items}) > 1:
            raise invalid("All line items must use the same currency.", param="line_items")
        if mode == "subscription" and not any(item["price"]["recurring"] for item in items):
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                param="line_items",
            )
        return items

    def _check_checkout_params(self, params: dict[str, Any]) -> str:
        """Validate everything but the line items; return the mode."""
        for key in params:
            if key not in KNOWN_PARAMS:
                raise invalid(f"Received unknown parameter: {key}", param=key)
        mode = params.get("mode")
        if not mode:
            raise missing_param("mode")
        if mode not in ("payment", "subscription"):
            raise invalid("Invalid mode: the fake supports payment or subscription", "mode")
        forbidden = "subscription_data" if mode == "payment" else "payment_intent_data"
        if params.get(forbidden):
            raise invalid(f"You can not pass `{forbidden}` in `{mode}` mode.", param=forbidden)
        embedded = params.get("ui_mode") in ("embedded", "custom")
        url_params = ("return_url",) if embedded else ("success_url", "cancel_url")
        if not embedded and not params.get("success_url"):
            raise missing_param("success_url")
        if embedded and params.get("success_url"):
            raise invalid("`success_url` is not allowed with `ui_mode` embedded.", "success_url")
        for key in url_params:
            if params.get(key) and not _is_url(params[key]):
                raise invalid("Not a valid URL", param=key)
        if "expires_at" in params:
            expires_at = params["expires_at"]
            ahead = expires_at - self.now() if isinstance(expires_at, int) else -1
            if ahead < MIN_EXPIRY:
                raise invalid(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout "
                    "Session creation.",
                    param="expires_at",
                )
            if ahead > MAX_EXPIRY:
                raise invalid(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout "
                    "Session creation.",
                    param="expires_at",
                )
        if params.get("customer_creation"):
            if mode != "payment":
                raise invalid(
                    "`customer_creation` can only be used in `payment` mode.",
                    param="customer_creation",
                )
            if params.get("customer"):
                raise invalid(
                    "You may only specify one of these parameters: customer, customer_creation.",
                    param="customer_creation",
                )
            if params["customer_creation"] not in ("always", "if_required"):
                raise invalid(
                    "Invalid customer_creation: must be one of always or if_required",
                    param="customer_creation",
                )
        if params.get("customer"):
            self.lookup(self.customers, "customer", params["customer"], "customer")
        if len(str(params.get("client_reference_id") or "")) > 200:
            raise invalid("Must be at most 200 characters.", param="client_reference_id")
        for key in ("payment_intent_data", "subscription_data"):
            validate_metadata((params.get(key) or {}).get("metadata"), f"{key}[metadata]")
        trial = (params.get("subscription_data") or {}).get("trial_period_days")
        if trial is not None and (not isinstance(trial, int) or not 1 <= trial <= 730):
            raise invalid(
                "trial_period_days must be between 1 and 730",
                param="subscription_data[trial_period_days]",
            )
        return mode
