"""The payment gateway: what shopbot needs from Stripe, and the StripeClient implementation."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import stripe

from bot.errors import Conflict, PaymentError
from bot.i18n import N_, Text
from bot.stripe_facts import invoice_subscription, order_reference, stripe_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """Everything needed to open a Checkout Session for one of our orders."""

    order_id: int
    install_id: str
    customer_id: str | None  # None: a web buyer without a Discord login (Stripe makes one)
    guild_id: int
    buyer_id: int | None
    recipient_id: int | None
    product_id: int
    product_name: str
    description: str
    amount: int
    currency: str
    mode: str  # "payment" | "subscription"
    interval: str | None
    trial_days: int | None
    stripe_price_id: str | None
    allow_promotion_codes: bool
    success_url: str
    cancel_url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class InvoicePaymentLink:
    """One InvoicePayment: a payment intent paying an invoice (of a subscription, if any)."""

    payment_intent_id: str
    invoice_id: str
    subscription_id: str | None
    status: str  # open | paid | canceled


class PaymentGateway(Protocol):
    """The Stripe operations the shop uses; tests point the real one at a fake server."""

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    async def expire_checkout(self, session_id: str) -> str: ...

    async def create_customer(self, install_id: str, user_id: int) -> str: ...

    async def portal_url(self, customer_id: str, return_url: str) -> str: ...

    async def refund(
        self, order_id: int, payment_intent_id: str, reason: str, *, install_id: str
    ) -> str: ...

    async def invoices_paid_by(self, payment_intent_id: str) -> list[InvoicePaymentLink]: ...

    async def payment_of_invoice(self, invoice_id: str) -> str | None: ...

    async def cancel_subscription(self, subscription_id: str) -> None: ...

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]: ...

    def events_since(self, since: int, types: list[str]) -> AsyncIterator[dict[str, Any]]: ...

    async def subscription(self, subscription_id: str) -> dict[str, Any]: ...


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidSignature(Exception):
    """The webhook payload is not signed by Stripe with our secret, or is stale/malformed."""


class StripeGateway:
    """StripeClient with async methods, retries and per-order idempotency keys."""

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str) -> None:
        self._http = stripe.AIOHTTPClient()
        self._client = stripe.StripeClient(
            secret_key,
            http_client=self._http,
            base_addresses={"api": api_base},
            max_network_retries=2,
        )
        self._webhook_secret = webhook_secret

    @property
    def client(self) -> stripe.StripeClient:
        return self._client

    async def close(self) -> None:
        await self._http.close_async()

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Create the session; the idempotency key makes a retry return the same one."""
        metadata = {
            "install_id": request.install_id,
            "order_id": str(request.order_id),
            "guild_id": str(request.guild_id),
            "product_id": str(request.product_id),
        }
        if request.buyer_id is not None:
            metadata["user_id"] = str(request.buyer_id)
        if request.recipient_id is not None:
            metadata["recipient_id"] = str(request.recipient_id)
        params: dict[str, Any] = {
            "mode": request.mode,
            "line_items": [_line_item(request)],
            "client_reference_id": order_reference(request.install_id, request.order_id),
            "metadata": metadata,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": int(request.expires_at.timestamp()),
        }
        if request.customer_id is not None:
            params["customer"] = request.customer_id
        if request.allow_promotion_codes:
            params["allow_promotion_codes"] = True
        if request.mode == "subscription":
            subscription_data: dict[str, Any] = {"metadata": metadata}
            if request.trial_days:
                subscription_data["trial_period_days"] = request.trial_days
            params["subscription_data"] = subscription_data
        else:
            params["payment_intent_data"] = {"metadata": metadata}
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"checkout:{request.install_id}:{request.order_id}"},
            )
        except stripe.StripeError as exc:
            log.warning(
                "stripe refused checkout for order %s: %s",
                request.order_id,
                exc.user_message or exc.__class__.__name__,
            )
            raise PaymentError(_user_message(exc, CHECKOUT)) from None
        if not session.url:
            raise PaymentError(N_("Stripe did not return a checkout link; please try again."))
        return CheckoutSession(id=session.id, url=session.url)

    async def expire_checkout(self, session_id: str) -> str:
        """Expire an open Checkout Session so it can no longer be paid; return its status
        now: `expired`, or `complete` when it was paid first (then nothing changed).

        Stripe refuses to expire a session that is not open; the session is then read to
        tell "already expired" from "paid meanwhile".
        """
        sessions = self._client.v1.checkout.sessions
        try:
            session = await sessions.expire_async(session_id)
        except stripe.InvalidRequestError as exc:
            try:
                session = await sessions.retrieve_async(session_id)
            except stripe.StripeError:
                log.warning("stripe refused to expire %s: %s", session_id, _describe(exc))
                raise PaymentError(_user_message(exc, EXPIRE)) from None
        except stripe.StripeError as exc:
            log.warning("stripe could not expire %s: %s", session_id, _describe(exc))
            raise PaymentError(_user_message(exc, EXPIRE)) from None
        return str(session.status)

    async def create_customer(self, install_id: str, user_id: int) -> str:
        """The Stripe customer for a Discord user of this install (the idempotency key makes
        a retry, or two checkouts racing, return the same one)."""
        try:
            customer = await self._client.v1.customers.create_async(
                params={
                    "description": f"Discord user {user_id}",
                    "metadata": {"install_id": install_id, "discord_user_id": str(user_id)},
                },
                options={"idempotency_key": f"customer:{install_id}:{user_id}"},
            )
        except stripe.StripeError as exc:
            log.warning("stripe refused to create a customer: %s", exc.__class__.__name__)
            raise PaymentError(_user_message(exc, CHECKOUT)) from None
        return customer.id

    async def portal_url(self, customer_id: str, return_url: str) -> str:
        """A short-lived Stripe Billing customer portal link."""
        try:
            session = await self._client.v1.billing_portal.sessions.create_async(
                params={"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            log.warning("stripe refused a portal session: %s", _describe(exc))
            raise PaymentError(_user_message(exc, PORTAL)) from None
        return session.url

    async def refund(
        self, order_id: int, payment_intent_id: str, reason: str, *, install_id: str
    ) -> str:
        """Refund a payment in full, once per order of this install (idempotency key);
        returns the refund id."""
        try:
            refund = await self._client.v1.refunds.create_async(
                params={
                    "payment_intent": payment_intent_id,
                    "reason": "requested_by_customer",
                    "metadata": {
                        "install_id": install_id,
                        "order_id": str(order_id),
                        "note": reason[:450],
                    },
                },
                options={"idempotency_key": f"refund:{install_id}:{order_id}"},
            )
        except stripe.StripeError as exc:
            log.warning("stripe refused the refund of order %s: %s", order_id, _describe(exc))
            if _already_refunded(exc):
                raise Conflict(already_refunded_text(order_id)) from None
            raise PaymentError(_user_message(exc, REFUND)) from None
        return refund.id

    async def events_since(self, since: int, types: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Every event of these types created at or after `since` (unix), newest first, as
        dicts shaped like webhook payloads. Stripe keeps events for 30 days."""
        params: dict[str, Any] = {"created": {"gte": since}, "limit": 100}
        if types:
            params["types"] = types[:20]  # Stripe accepts at most 20 types
        while True:
            page = await self._client.v1.events.list_async(params=params)  # type: ignore[arg-type]
            body = _raw_json(page)
            for event in body["data"] if isinstance(body, dict) else []:
                yield event
            if not page.has_more or not page.data:
                return
            params["starting_after"] = page.data[-1].id

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as Stripe has it now (raises stripe.StripeError)."""
        sub = await self._client.v1.subscriptions.retrieve_async(subscription_id)
        body = _raw_json(sub)
        if not isinstance(body, dict):
            raise PaymentError(N_("Stripe answered with something that is not a subscription."))
        return body

    async def invoices_paid_by(self, payment_intent_id: str) -> list[InvoicePaymentLink]:
        """The InvoicePayments of a payment intent, with each invoice's subscription (none:
        the payment is not an invoice's, e.g. a one-time checkout). Raises PaymentError only
        while Stripe cannot answer (network, rate limit, 5xx, our key); a request Stripe
        refuses (an id it does not know) has no answer to wait for."""
        try:
            found = await self._client.v1.invoice_payments.list_async(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
                    "expand": ["data.invoice"],
                    "limit": 100,
                }
            )
        except stripe.InvalidRequestError as exc:  # not an id Stripe knows: no invoice of ours
            log.warning(
                "stripe refused invoice payments of %s: %s", payment_intent_id, _describe(exc)
            )
            return []
        except stripe.StripeError as exc:
            raise PaymentError(_user_message(exc, LOOKUP)) from None
        links = []
        for item in found.data:
            invoice = item.to_dict().get("invoice")
            invoice_id = stripe_id(invoice)
            if invoice_id is None:
                continue
            links.append(
                InvoicePaymentLink(
                    payment_intent_id=payment_intent_id,
                    invoice_id=invoice_id,
                    subscription_id=invoice_subscription(invoice)
                    if isinstance(invoice, dict)
                    else None,
                    status=str(item.status),
                )
            )
        return links

    async def payment_of_invoice(self, invoice_id: str) -> str | None:
        """The payment intent that paid the invoice (None: nothing paid it, e.g. a trial)."""
        try:
            found = await self._client.v1.invoice_payments.list_async(
                params={"invoice": invoice_id, "status": "paid", "limit": 10}
            )
        except stripe.StripeError as exc:
            raise PaymentError(_user_message(exc, LOOKUP)) from None
        for item in found.data:
            payment_intent = stripe_id((item.to_dict().get("payment") or {}).get("payment_intent"))
            if payment_intent is not None:
                return payment_intent
        return None

    async def cancel_subscription(self, subscription_id: str) -> None:
        """Cancel now, so it never renews. One already canceled counts as done: Stripe then
        answers "No such subscription" (404), as it does for any canceled subscription."""
        try:
            await self._client.v1.subscriptions.cancel_async(subscription_id)
        except stripe.StripeError as exc:
            if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
                log.info("subscription %s was already canceled in Stripe", subscription_id)
                return
            log.warning("stripe refused to cancel %s: %s", subscription_id, _describe(exc))
            raise PaymentError(_user_message(exc, CANCEL)) from None

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """Check the Stripe-Signature header with the SDK; return the event as a dict."""
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(
                text, signature, self._webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
            event = json.loads(text)
            # JSON may escape lone surrogates that SQLite (UTF-8) cannot store; only a
            # \uD800-\uDFFF escape can make one, so only then is the whole event checked.
            if _SURROGATE_ESCAPE.search(text):
                json.dumps(event, ensure_ascii=False).encode("utf-8")
        except (stripe.SignatureVerificationError, UnicodeError, ValueError) as exc:
            raise InvalidSignature(str(exc)[:200]) from None
        if not isinstance(event, dict) or not _looks_like_event(event):
            raise InvalidSignature("payload is not a Stripe event")
        return event


def _raw_json(obj: stripe.StripeObject) -> Any:
    """The JSON body exactly as Stripe sent it (to_dict() holds Decimals json cannot write)."""
    response = obj.last_response
    return None if response is None else json.loads(response.body)


def _looks_like_event(event: dict[str, Any]) -> bool:
    data = event.get("data")
    return (
        isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and 0 <= event["created"] < 2**63
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )


def _line_item(request: CheckoutRequest) -> dict[str, Any]:
    if request.stripe_price_id:
        return {"price": request.stripe_price_id, "quantity": 1}
    product_data: dict[str, Any] = {"name": request.product_name}
    if request.description:
        product_data["description"] = request.description[:500]
    price_data: dict[str, Any] = {
        "currency": request.currency,
        "unit_amount": request.amount,
        "product_data": product_data,
    }
    if request.mode == "subscription":
        price_data["recurring"] = {"interval": request.interval}
    return {"price_data": price_data, "quantity": 1}


@dataclass(frozen=True, slots=True)
class Operation:
    """How one Stripe operation is worded when it fails."""

    refused: str  # Stripe said no to the request itself; `{detail}` is Stripe's message
    failed: str  # Stripe had an internal problem
    unchanged: str  # what did not happen, so the user knows where they stand


CHECKOUT = Operation(
    refused=N_(
        "Stripe refused this checkout (the product's price setup may be wrong); tell an admin."
    ),
    failed=N_("Stripe had a problem creating your checkout"),
    unchanged=N_("nothing was charged"),
)
EXPIRE = Operation(
    refused=N_("Stripe refused to close this checkout: {detail}"),
    failed=N_("Stripe had a problem closing this checkout"),
    unchanged=N_("the checkout link may still work until it expires"),
)
REFUND = Operation(
    refused=N_("Stripe refused the refund: {detail}"),
    failed=N_("Stripe had a problem with the refund"),
    unchanged=N_("nothing was refunded"),
)
PORTAL = Operation(
    refused=N_(
        "Stripe could not open the billing portal (the shop's customer portal may not "
        "be set up in the Stripe dashboard); tell an admin."
    ),
    failed=N_("Stripe had a problem opening the billing portal"),
    unchanged=N_("no portal link was made"),
)
CANCEL = Operation(
    refused=N_("Stripe refused to cancel the subscription: {detail}"),
    failed=N_("Stripe had a problem cancelling the subscription"),
    unchanged=N_("the subscription was not canceled"),
)
LOOKUP = Operation(
    refused=N_("Stripe could not tell which payment paid the invoice: {detail}"),
    failed=N_("Stripe had a problem looking up the invoice's payment"),
    unchanged=N_("nothing was changed"),
)


def already_refunded_text(order_id: int) -> Text:
    """What a second `/shop refund` of one order says (our records or Stripe's)."""
    return Text(
        N_(
            "Order #{order} is already refunded, or its refund was already requested; "
            "access ends as soon as Stripe confirms it."
        ),
        order=order_id,
    )


def _already_refunded(exc: stripe.StripeError) -> bool:
    """Stripe says this refund was made already: the charge is fully refunded, or our
    idempotency key was used before (the same order, perhaps with another reason)."""
    if isinstance(exc, stripe.IdempotencyError):
        return True
    return isinstance(exc, stripe.InvalidRequestError) and exc.code == "charge_already_refunded"


def _describe(exc: stripe.StripeError) -> str:
    """Stripe's own words for the log (and for admins): message, else the error class."""
    return str(exc.user_message or exc.__class__.__name__)[:300]


def _user_message(exc: stripe.StripeError, operation: Operation) -> Text:
    """A message for the person who asked, about the operation they asked for (translated
    when shown; Stripe's own words stay as Stripe wrote them)."""
    unchanged = Text(operation.unchanged)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return Text(
            N_("The shop's payment setup is broken (Stripe rejected our key); tell an admin.")
        )
    if isinstance(exc, stripe.APIConnectionError):
        return Text(
            N_("Stripe could not be reached; {unchanged}. Please try again in a minute."),
            unchanged=unchanged,
        )
    if isinstance(exc, stripe.RateLimitError):
        return Text(
            N_("Stripe is busy right now; {unchanged}. Please try again in a minute."),
            unchanged=unchanged,
        )
    if isinstance(exc, stripe.InvalidRequestError | stripe.IdempotencyError):
        return Text(operation.refused, detail=_describe(exc))
    return Text(
        N_("{failed}; {unchanged}. Please try again."),
        failed=Text(operation.failed),
        unchanged=unchanged,
    )
