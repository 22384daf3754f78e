"""Checkout Sessions: creation, completion, asynchronous payments and expiry, with their events."""

from __future__ import annotations

import copy
from typing import Any

from .checkout_params import DEFAULT_EXPIRY, CheckoutValidation
from .errors import FakeUsageError, invalid
from .objects import fresh
from .state import StripeObject, validate_metadata

PAYMENT_STATUSES = ("paid", "unpaid", "no_payment_required")


class CheckoutOps(CheckoutValidation):
    """What happens to a Checkout Session after `POST /v1/checkout/sessions`."""

    def create_checkout_session(self, params: dict[str, Any]) -> StripeObject:
        """`POST /v1/checkout/sessions`: validate, then store an `open`, `unpaid` session."""
        mode = self._check_checkout_params(params)
        items = self._line_items(params, mode)
        now, session_id = self.now(), "cs_test_a1" + self.ids.token(56)
        trial = (params.get("subscription_data") or {}).get("trial_period_days")
        due_now = 0 if trial else sum(item["amount_subtotal"] for item in items)
        embedded = params.get("ui_mode") in ("embedded", "custom")
        session = fresh(
            "checkout.session",
            id=session_id,
            allow_promotion_codes=params.get("allow_promotion_codes"),
            amount_subtotal=due_now,
            amount_total=due_now,
            cancel_url=params.get("cancel_url") or None,
            client_reference_id=params.get("client_reference_id") or None,
            client_secret=f"{session_id}_secret_{self.ids.token(24)}" if embedded else None,
            created=now,
            currency=items[0]["currency"],
            customer=params.get("customer") or None,
            customer_creation=(params.get("customer_creation") or "if_required")
            if mode == "payment"
            else None,
            customer_email=params.get("customer_email") or None,
            expires_at=params.get("expires_at", now + DEFAULT_EXPIRY),
            invoice_creation={"enabled": False, "invoice_data": None}
            if mode == "payment"
            else None,
            locale=params.get("locale") or None,
            metadata=validate_metadata(params.get("metadata")),
            mode=mode,
            payment_method_collection="always" if mode == "subscription" else None,
            payment_status="unpaid",
            status="open",
            subscription=None,
            success_url=params.get("success_url") or None,
            ui_mode=params.get("ui_mode") or "hosted",
            url=None if embedded else self._checkout_url(session_id),
        )
        if embedded:
            session["return_url"] = params.get("return_url")
        self.sessions[session_id] = session
        self.session_line_items[session_id] = items
        self.session_params[session_id] = copy.deepcopy(params)
        return session

    def _checkout_url(self, session_id: str) -> str:
        """The hosted page's address (the server may point it at itself)."""
        return f"https://checkout.stripe.com/c/pay/{session_id}"

    def success_redirect_url(self, session_id: str) -> str:
        """Where Stripe sends the buyer: `success_url` with `{CHECKOUT_SESSION_ID}` filled in."""
        session = self.require(self.sessions, session_id)
        return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)

    def _open_session(self, session_id: str) -> StripeObject:
        """The session, which must still be open."""
        session = self.require(self.sessions, session_id)
        if session["status"] != "open":
            raise FakeUsageError(f"{session_id} is {session['status']}, not open")
        return session

    def complete_checkout(
        self,
        session_id: str,
        payment_status: str | None = None,
        *,
        email: str = "buyer@example.com",
        name: str = "Test Buyer",
    ) -> StripeObject:
        """The buyer pays: create what Stripe creates and return `checkout.session.completed`.

        `payment_status` defaults to `paid` (`no_payment_required` when nothing is due, e.g. a
        trial); `unpaid` (payment mode) models a delayed method such as a bank debit, settled
        later with `async_payment()`. A Customer is created in subscription mode, or in payment
        mode with `customer_creation="always"`.
        """
        session = self._open_session(session_id)
        status = payment_status or ("paid" if session["amount_total"] else "no_payment_required")
        if status not in PAYMENT_STATUSES:
            raise FakeUsageError(f"payment_status must be one of {PAYMENT_STATUSES}")
        if status == "unpaid" and session["mode"] != "payment":
            raise FakeUsageError("the fake models delayed payments in payment mode only")
        params, mode = self.session_params[session_id], session["mode"]
        customer_id = session["customer"]
        wants_customer = mode == "subscription" or session["customer_creation"] == "always"
        if customer_id is None and wants_customer:
            customer_id = self.create_customer({"email": email, "name": name})["id"]
        session["customer_details"] = {
            "address": None,
            "business_name": None,
            "email": email,
            "individual_name": None,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        if mode == "payment" and status != "no_payment_required":
            intent_data = params.get("payment_intent_data") or {}
            intent, _ = self.create_payment(
                session["amount_total"],
                session["currency"],
                customer=customer_id,
                metadata=intent_data.get("metadata") or {},
                description=intent_data.get("description"),
                email=email,
                outcome="succeeded" if status == "paid" else "processing",
            )
            session["payment_intent"] = intent["id"]
        elif mode == "subscription":
            item = next(i for i in self.session_line_items[session_id] if i["price"]["recurring"])
            sub_data = params.get("subscription_data") or {}
            sub, invoice = self.create_subscription(
                customer_id=str(customer_id),
                price=item["price"],
                quantity=item["quantity"],
                metadata=sub_data.get("metadata") or {},
                trial_period_days=sub_data.get("trial_period_days"),
            )
            session.update(subscription=sub["id"], invoice=invoice["id"])
        session.update(customer=customer_id, payment_status=status, status="complete", url=None)
        return self.make_event("checkout.session.completed", session)

    def async_payment(self, session_id: str, succeeded: bool = True) -> StripeObject:
        """Settle a delayed payment; return `checkout.session.async_payment_succeeded`/`_failed`."""
        session = self.require(self.sessions, session_id)
        if session["status"] != "complete" or session["payment_status"] != "unpaid":
            raise FakeUsageError(f"{session_id} has no pending delayed payment")
        self.settle_payment(session["payment_intent"], succeeded)
        if succeeded:
            session["payment_status"] = "paid"
            return self.make_event("checkout.session.async_payment_succeeded", session)
        return self.make_event("checkout.session.async_payment_failed", session)

    def _expire(self, session: StripeObject) -> StripeObject:
        """Mark an open session expired; return `checkout.session.expired`."""
        session.update(status="expired", url=None)
        return self.make_event("checkout.session.expired", session)

    def expire_checkout(self, session_id: str) -> StripeObject:
        """Expire an open session now; return `checkout.session.expired`."""
        return self._expire(self._open_session(session_id))

    def expire_due_sessions(self) -> list[StripeObject]:
        """Expire every open session whose `expires_at` has passed on the fake clock."""
        now = self.now()
        due = [s for s in self.sessions.values() if s["status"] == "open"]
        return [self._expire(session) for session in due if session["expires_at"] <= now]

    def api_expire_session(self, session_id: str) -> StripeObject:
        """`POST /v1/checkout/sessions/{id}/expire`."""
        session = self.lookup(self.sessions, "checkout.session", session_id)
        if session["status"] != "open":
            raise invalid(
                'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".',
            )
        self._expire(session)
        return session
