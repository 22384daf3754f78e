"""The Stripe fake, driven by the real `stripe` SDK, behaves like Stripe where shopbot cares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode  # the SDK's own form encoder, to check the decoder

from tests.fakes.stripe import (
    FakeClock,
    FakeStripe,
    WebhookSender,
    add_interval,
    decode_form,
    encode_event,
    sign_payload,
)
from tests.fakes.stripe import fixtures as stripe_fixtures
from tests.fakes.stripe.fixtures import make_client

# The packaged fixtures, made visible to this module (tests/conftest.py may also import them).
fake_stripe = stripe_fixtures.fake_stripe
fake_stripe_client = stripe_fixtures.fake_stripe_client

SECRET = "whsec_test_secret"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at START."""
    return FakeClock(START)


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeStripe]:
    """A running fake on the fake clock."""
    async with FakeStripe(clock=clock) as running:
        yield running


@pytest.fixture
async def client(fake: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    """The real async SDK client, configured as shopbot configures it."""
    http_client = stripe.AIOHTTPClient()
    yield make_client(fake, http_client)
    await http_client.close_async()
    assert fake.internal_errors == []


def payment_params(order_id: str = "42", **overrides: Any) -> dict[str, Any]:
    """Checkout create params as shopbot sends them for a one-time product."""
    metadata = {"order_id": order_id, "guild_id": "7", "user_id": "9", "product_id": "3"}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 499,
                    "product_data": {"name": "VIP", "description": "VIP role"},
                },
                "quantity": 1,
            }
        ],
        "client_reference_id": order_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": "https://shop.test/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.test/checkout/cancel",
        "expires_at": START + 3600,
        "allow_promotion_codes": True,
    }
    return params | overrides


def subscription_params(trial_days: int | None = None) -> dict[str, Any]:
    """Checkout create params for a monthly subscription product."""
    params = payment_params()
    del params["payment_intent_data"]
    params["mode"] = "subscription"
    params["line_items"][0]["price_data"]["recurring"] = {"interval": "month", "interval_count": 1}
    params["subscription_data"] = {"metadata": params["metadata"]}
    if trial_days:
        params["subscription_data"]["trial_period_days"] = trial_days
    return params


async def test_checkout_session_create_and_retrieve(fake: FakeStripe, client: stripe.StripeClient):
    """A payment-mode session is created from price_data and reads back with its fields."""
    created = await client.v1.checkout.sessions.create_async(
        params=payment_params(), options={"idempotency_key": "checkout:42"}
    )
    assert created.id.startswith("cs_test_")
    assert created.url == f"https://checkout.stripe.com/c/pay/{created.id}"
    assert (created.status, created.payment_status, created.mode) == ("open", "unpaid", "payment")
    assert (created.amount_total, created.amount_subtotal, created.currency) == (499, 499, "usd")
    assert created.expires_at == START + 3600 and created.allow_promotion_codes is True
    assert "{CHECKOUT_SESSION_ID}" in created.success_url
    read = await client.v1.checkout.sessions.retrieve_async(
        created.id, params={"expand": ["line_items"]}
    )
    assert read.client_reference_id == "42" and read.metadata["order_id"] == "42"
    assert read.line_items.data[0].price.unit_amount == 499
    record = fake.requests_to("/v1/checkout/sessions", "POST")[0]
    assert record.idempotency_key == "checkout:42" and record.status == 200
    assert record.params["line_items"][0]["price_data"]["unit_amount"] == 499
    assert record.params["allow_promotion_codes"] is True


async def test_idempotent_create_replays_and_conflict_raises(
    fake: FakeStripe, client: stripe.StripeClient
):
    """One key replays the same session; reusing it with other params is an IdempotencyError."""
    options = {"idempotency_key": "checkout:42"}
    first = await client.v1.checkout.sessions.create_async(params=payment_params(), options=options)
    again = await client.v1.checkout.sessions.create_async(params=payment_params(), options=options)
    assert again.id == first.id and len(fake.sessions) == 1
    assert fake.requests[-1].replayed
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.checkout.sessions.create_async(
            params=payment_params(client_reference_id="43"), options=options
        )
    assert len(fake.sessions) == 1


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"expires_at": START + 29 * 60}, "expires_at"),
        ({"expires_at": START + DAY + 1}, "expires_at"),
        ({"success_url": None}, "success_url"),
        ({"mode": None}, "mode"),
        (
            {"customer_creation": "always", "mode": "subscription", "payment_intent_data": None},
            "customer_creation",
        ),
        ({"line_items": [{"price": "price_missing", "quantity": 1}]}, "line_items[0][price]"),
        ({"metadata": {"k" * 41: "v"}}, f"metadata[{'k' * 41}]"),
        ({"bogus": "1"}, "bogus"),
    ],
)
async def test_invalid_create_params_raise_with_param(
    client: stripe.StripeClient, overrides: dict[str, Any], param: str
):
    """Invalid create params are a 400 InvalidRequestError naming the offending param."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.checkout.sessions.create_async(params=payment_params(**overrides))
    assert caught.value.param == param and caught.value.http_status == 400


async def test_unknown_id_and_bad_key_errors(fake: FakeStripe, client: stripe.StripeClient):
    """Unknown ids are 404 resource_missing; a wrong secret key is an AuthenticationError."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.checkout.sessions.retrieve_async("cs_test_nope")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    assert caught.value.user_message == "No such checkout.session: 'cs_test_nope'"
    http_client = stripe.AIOHTTPClient()
    wrong = stripe.StripeClient(
        "sk_test_wrong", http_client=http_client, base_addresses={"api": fake.api_base}
    )
    with pytest.raises(stripe.AuthenticationError):
        await wrong.v1.accounts.retrieve_current_async()
    await http_client.close_async()


async def test_completed_event_verifies_with_sdk(fake: FakeStripe, client: stripe.StripeClient):
    """complete_checkout's event, signed by sign_payload, passes the SDK's webhook verification."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    event = fake.complete_checkout(session.id)
    payload = encode_event(event)
    header = sign_payload(payload, SECRET)
    parsed = stripe.Webhook.construct_event(payload, header, SECRET)
    assert parsed.type == "checkout.session.completed" and parsed.data.object.id == session.id
    assert parsed.api_version == stripe.api_version  # the version the SDK pins
    assert client.construct_event(payload, header, SECRET).id == event["id"]
    completed = parsed.data.object
    assert (completed.status, completed.payment_status) == ("complete", "paid")
    intent = await client.v1.payment_intents.retrieve_async(completed.payment_intent)
    charge = await client.v1.charges.retrieve_async(intent.latest_charge)
    assert intent.metadata["order_id"] == charge.metadata["order_id"] == "42"
    assert charge.payment_intent == intent.id and charge.amount == 499
    stamp = int(time.time())
    assert sign_payload(payload, SECRET, stamp) == (
        stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, stamp)
    )


@pytest.mark.parametrize("attack", ["tampered", "wrong_secret", "stale", "missing"])
async def test_bad_signatures_are_rejected(
    fake: FakeStripe, client: stripe.StripeClient, attack: str
):
    """Tampered bodies, wrong secrets, stale timestamps and missing headers fail verification."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    payload = encode_event(fake.complete_checkout(session.id))
    header: str | None = sign_payload(payload, SECRET)
    if attack == "tampered":
        payload = payload.replace(b'"paid"', b'"unpaid"')
    elif attack == "wrong_secret":
        header = sign_payload(payload, "whsec_other")
    elif attack == "stale":
        header = sign_payload(payload, SECRET, int(time.time()) - 301)
    else:
        header = None
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, SECRET)


async def test_subscription_checkout_and_renewal(
    fake: FakeStripe, client: stripe.StripeClient, clock: FakeClock
):
    """Subscription checkout creates an active subscription; renewal moves the item period on."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params())
    completed = fake.complete_checkout(session.id)["data"]["object"]
    sub = await client.v1.subscriptions.retrieve_async(completed["subscription"])
    assert sub.status == "active" and sub.metadata["order_id"] == "42"
    assert sub.customer == completed["customer"] and sub.customer in fake.customers
    first_end = sub["items"].data[0].current_period_end
    assert first_end == add_interval(START, "month") == START + 31 * DAY
    clock.advance(31 * DAY)
    invoice = fake.renew_subscription(sub.id)["data"]["object"]
    renewed = await client.v1.subscriptions.retrieve_async(sub.id)
    new_end = renewed["items"].data[0].current_period_end
    assert new_end == add_interval(first_end, "month") > first_end
    assert invoice["subscription"] == sub.id and invoice["status"] == "paid"
    assert invoice["parent"]["subscription_details"]["subscription"] == sub.id
    assert invoice["parent"]["subscription_details"]["metadata"]["order_id"] == "42"
    assert invoice["lines"]["data"][0]["period"] == {"start": first_end, "end": new_end}
    assert invoice["billing_reason"] == "subscription_cycle" and invoice["amount_paid"] == 499


async def test_trial_subscription_needs_no_payment(fake: FakeStripe, client: stripe.StripeClient):
    """A trial checkout costs 0 now, completes as no_payment_required and starts trialing."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params(7))
    assert session.amount_total == 0
    completed = fake.complete_checkout(session.id)["data"]["object"]
    assert completed["payment_status"] == "no_payment_required"
    sub = fake.subscriptions[completed["subscription"]]
    assert sub["status"] == "trialing" and sub["trial_end"] == START + 7 * DAY
    assert sub["items"]["data"][0]["current_period_end"] == START + 7 * DAY


async def test_failed_renewal_then_recovery(fake: FakeStripe, client: stripe.StripeClient):
    """A failed renewal makes the subscription past_due; paying the invoice makes it active."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params())
    sub_id = fake.complete_checkout(session.id)["data"]["object"]["subscription"]
    failed = fake.fail_invoice(sub_id)
    assert failed["type"] == "invoice.payment_failed"
    assert fake.subscriptions[sub_id]["status"] == "past_due"
    paid = fake.pay_invoice(failed["data"]["object"]["id"])
    assert paid["type"] == "invoice.paid" and fake.subscriptions[sub_id]["status"] == "active"


async def test_subscription_update_and_cancel(fake: FakeStripe, client: stripe.StripeClient):
    """API updates and cancels emit customer.subscription.updated/deleted with previous values."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params())
    sub_id = fake.complete_checkout(session.id)["data"]["object"]["subscription"]
    sub = await client.v1.subscriptions.update_async(sub_id, params={"cancel_at_period_end": True})
    assert sub.cancel_at_period_end is True
    assert sub.cancel_at == sub["items"].data[0].current_period_end
    updated = fake.events_of_type("customer.subscription.updated")[-1]
    assert updated["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert updated["request"]["id"] == fake.requests[-1].request_id
    ended = fake.renew_subscription(sub_id)
    assert ended["type"] == "customer.subscription.deleted"
    assert ended["data"]["object"]["status"] == "canceled"
    other = await client.v1.checkout.sessions.create_async(params=subscription_params())
    other_sub = fake.complete_checkout(other.id)["data"]["object"]["subscription"]
    canceled = await client.v1.subscriptions.cancel_async(other_sub)
    assert canceled.status == "canceled"
    assert (
        fake.events_of_type("customer.subscription.deleted")[-1]["data"]["object"]["id"]
        == other_sub
    )


async def test_refund_full_vs_partial(fake: FakeStripe, client: stripe.StripeClient):
    """Partial refunds accumulate amount_refunded; only a full refund sets charge.refunded."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    pi_id = fake.complete_checkout(session.id)["data"]["object"]["payment_intent"]
    refund = await client.v1.refunds.create_async(
        params={
            "payment_intent": pi_id,
            "amount": 200,
            "reason": "requested_by_customer",
            "metadata": {"order_id": "42"},
        }
    )
    assert refund.status == "succeeded" and refund.amount == 200
    charge = fake.events_of_type("charge.refunded")[-1]["data"]["object"]
    assert (charge["amount_refunded"], charge["refunded"]) == (200, False)
    assert [e["type"] for e in list(fake.events.values())[-2:]] == [
        "charge.refunded",
        "refund.created",
    ]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.refunds.create_async(params={"payment_intent": pi_id, "amount": 300})
    assert caught.value.param == "amount"
    full = fake.refund(pi_id)["data"]["object"]
    assert (full["amount_refunded"], full["refunded"]) == (499, True)
    assert full["metadata"]["order_id"] == "42"


async def test_subscription_payments_are_linked_only_through_invoice_payments(
    fake: FakeStripe, client: stripe.StripeClient, clock: FakeClock
):
    """Each invoice is paid by its own PaymentIntent + Charge; neither the Invoice nor the
    Charge names the other, only an InvoicePayment does (listable by payment or invoice).
    Refunding or disputing that payment emits charge.refunded / charge.dispute.created."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params())
    sub_id = fake.complete_checkout(session.id)["data"]["object"]["subscription"]
    clock.advance(31 * DAY)
    renewal = fake.renew_subscription(sub_id)["data"]["object"]
    invoice = (await client.v1.invoices.retrieve_async(renewal["id"])).to_dict()
    assert "payment_intent" not in invoice and "payments" not in invoice
    by_invoice = await client.v1.invoice_payments.list_async(
        params={"invoice": renewal["id"], "status": "paid"}
    )
    (payment,) = by_invoice.data
    assert payment.is_default and payment.amount_paid == 499
    pi_id = payment.payment["payment_intent"]
    charge = fake.charges[fake.payment_intents[pi_id]["latest_charge"]]
    assert "invoice" not in charge and charge["metadata"] == {}
    by_payment = await client.v1.invoice_payments.list_async(
        params={
            "payment": {"type": "payment_intent", "payment_intent": pi_id},
            "expand": ["data.invoice"],
        }
    )
    (linked,) = by_payment.data
    assert linked.id == payment.id
    assert linked.invoice.parent.subscription_details.subscription == sub_id
    assert len((await client.v1.invoice_payments.list_async()).data) == 2  # both periods
    with pytest.raises(stripe.InvalidRequestError) as untyped:
        await client.v1.invoice_payments.list_async(
            params={"payment": {"payment_intent": pi_id}}  # type: ignore[typeddict-item]
        )
    assert (untyped.value.code, untyped.value.param) == ("parameter_missing", "payment[type]")
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.invoice_payments.list_async(params={"status": "done"})

    refund = await client.v1.refunds.create_async(params={"payment_intent": pi_id})
    refunded = fake.events_of_type("charge.refunded")[-1]["data"]["object"]
    assert refunded["payment_intent"] == pi_id and refunded["refunded"] is True
    assert refund.charge == charge["id"]
    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.refunds.create_async(params={"payment_intent": pi_id})
    assert again.value.code == "charge_already_refunded"
    disputed = fake.dispute(pi_id)
    assert disputed["type"] == "charge.dispute.created"
    assert disputed["data"]["object"]["payment_intent"] == pi_id


async def test_refund_key_reused_with_other_params_and_cancel_of_canceled(
    fake: FakeStripe, client: stripe.StripeClient
):
    """An idempotency key reused with different params is a 400 idempotency_error; a
    canceled subscription cannot be canceled again (404 No such subscription)."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    pi_id = fake.complete_checkout(session.id)["data"]["object"]["payment_intent"]
    options = {"idempotency_key": "refund:42"}
    first = {"payment_intent": pi_id, "metadata": {"note": "asked"}}
    await client.v1.refunds.create_async(params=first, options=options)  # type: ignore[arg-type]
    with pytest.raises(stripe.IdempotencyError) as reused:
        await client.v1.refunds.create_async(
            params={"payment_intent": pi_id, "metadata": {"note": "other"}},
            options=options,  # type: ignore[arg-type]
        )
    assert reused.value.http_status == 400
    other = await client.v1.checkout.sessions.create_async(params=subscription_params())
    sub_id = fake.complete_checkout(other.id)["data"]["object"]["subscription"]
    await client.v1.subscriptions.cancel_async(sub_id)
    with pytest.raises(stripe.InvalidRequestError) as gone:
        await client.v1.subscriptions.cancel_async(sub_id)
    assert (gone.value.http_status, gone.value.code) == (404, "resource_missing")


async def test_dispute_and_async_payment(fake: FakeStripe, client: stripe.StripeClient):
    """Delayed payments settle via async_payment; a dispute event carries the payment intent."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    completed = fake.complete_checkout(session.id, payment_status="unpaid")["data"]["object"]
    assert completed["payment_status"] == "unpaid"
    succeeded = fake.async_payment(session.id, succeeded=True)
    assert succeeded["type"] == "checkout.session.async_payment_succeeded"
    dispute = fake.dispute(completed["payment_intent"])
    assert dispute["type"] == "charge.dispute.created"
    assert dispute["data"]["object"]["payment_intent"] == completed["payment_intent"]


async def test_expire_via_api(fake: FakeStripe, client: stripe.StripeClient):
    """Expiring through the API emits checkout.session.expired; a second expire is a 400."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    expired = await client.v1.checkout.sessions.expire_async(session.id)
    assert expired.status == "expired" and expired.url is None
    assert fake.events_of_type("checkout.session.expired")[0]["data"]["object"]["id"] == session.id
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.checkout.sessions.expire_async(session.id)


async def test_events_list_created_filter_and_pagination(
    fake: FakeStripe, client: stripe.StripeClient, clock: FakeClock
):
    """events.list honours created[gte] and types, newest first, paginating with has_more."""
    for order in range(5):
        clock.advance(60)
        session = await client.v1.checkout.sessions.create_async(params=payment_params(str(order)))
        fake.complete_checkout(session.id)
    since = START + 3 * 60
    page = await client.v1.events.list_async(
        params={"created": {"gte": since}, "types": ["checkout.session.completed"], "limit": 2}
    )
    assert page.has_more and [e.created for e in page.data] == [START + 300, START + 240]
    rest = await client.v1.events.list_async(
        params={
            "created": {"gte": since},
            "types": ["checkout.session.completed"],
            "limit": 2,
            "starting_after": page.data[-1].id,
        }
    )
    assert [e.created for e in rest.data] == [START + 180] and not rest.has_more
    every = [e async for e in page.auto_paging_iter()]
    assert len(every) == 3
    wildcard = await client.v1.events.list_async(params={"type": "payment_intent.*", "limit": 100})
    assert len(wildcard.data) == 5


async def test_billing_portal_and_account(fake: FakeStripe, client: stripe.StripeClient):
    """A portal session for a customer has a billing.stripe.com URL; the account is readable."""
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})
    portal = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://discord.com/channels/7"}
    )
    assert portal.url.startswith("https://billing.stripe.com/p/session/test_")
    assert portal.return_url == "https://discord.com/channels/7"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.billing_portal.sessions.create_async(params={"customer": "cus_missing"})
    assert caught.value.param == "customer"
    account = await client.v1.accounts.retrieve_current_async()
    assert account.id == fake.account["id"] and account.charges_enabled


async def test_injected_500_is_retried_with_same_key(fake: FakeStripe, client: stripe.StripeClient):
    """The SDK retries an injected 500 with the same Idempotency-Key and then succeeds."""
    fault = fake.inject("/v1/checkout/sessions", status=500, count=1)
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    records = fake.requests_to("/v1/checkout/sessions", "POST")
    assert [r.status for r in records] == [500, 200] and fault.hits == 1
    assert records[0].idempotency_key == records[1].idempotency_key
    assert list(fake.sessions) == [session.id]


async def test_concurrent_same_key_gets_409_then_replay(
    fake: FakeStripe, client: stripe.StripeClient
):
    """While a keyed request is in flight (injected latency) a twin gets 409, retries, replays."""
    fake.inject("/v1/customers", status=None, delay=0.2)
    options = {"idempotency_key": "customer:9"}
    first, second = await asyncio.gather(
        client.v1.customers.create_async(params={"email": "a@example.com"}, options=options),
        client.v1.customers.create_async(params={"email": "a@example.com"}, options=options),
    )
    assert first.id == second.id and len(fake.customers) == 1
    assert sorted(r.status for r in fake.requests_to("/v1/customers")) == [200, 200, 409]


async def test_injected_card_error(fake: FakeStripe, client: stripe.StripeClient):
    """An injected 402 surfaces as stripe.CardError with Stripe's decline code."""
    fake.inject("/v1/refunds", status=402)
    with pytest.raises(stripe.CardError) as caught:
        await client.v1.refunds.create_async(params={"payment_intent": "pi_x"})
    assert caught.value.code == "card_declined"


async def test_webhook_sender_against_verifying_app(fake: FakeStripe, client: stripe.StripeClient):
    """WebhookSender's deliveries verify with the SDK; bad ones get 400; delivery is tracked."""

    async def receive(request: web.Request) -> web.Response:
        try:
            event = stripe.Webhook.construct_event(
                await request.read(), request.headers.get("Stripe-Signature"), SECRET
            )
        except stripe.SignatureVerificationError:
            return web.Response(status=400, text="bad signature")
        return web.Response(text=event.id)

    app = web.Application()
    app.router.add_post("/webhooks/stripe", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    event = fake.complete_checkout(session.id)
    async with WebhookSender(f"http://127.0.0.1:{port}/webhooks/stripe", SECRET) as sender:
        assert await sender.send(event) == (200, event["id"])
        body = encode_event(event)
        bad = {"Stripe-Signature": sign_payload(body, "whsec_wrong")}
        assert (await sender.send_raw(body, bad))[0] == 400
        assert (await sender.send_raw(body, {}))[0] == 400
        assert await fake.deliver(event, sender) == (200, event["id"])
    await runner.cleanup()
    undelivered = await client.v1.events.list_async(
        params={"delivery_success": False, "limit": 100}
    )
    assert event["id"] not in {e.id for e in undelivered.data} and undelivered.data


async def test_packaged_fixtures(fake_stripe: FakeStripe, fake_stripe_client: stripe.StripeClient):
    """The fake_stripe and fake_stripe_client fixtures give a running fake and a working client."""
    customer = await fake_stripe_client.v1.customers.create_async(
        params={"email": "b@example.com", "metadata": {"discord_id": "9"}}
    )
    assert fake_stripe.customers[customer.id]["metadata"] == {"discord_id": "9"}
    assert (await fake_stripe_client.v1.customers.retrieve_async(customer.id)).email == (
        "b@example.com"
    )


_leaf = st.one_of(st.text(max_size=5), st.integers(0, 10**6), st.booleans())
_keys = st.text(st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=4)
_params = st.dictionaries(
    _keys,
    st.recursive(
        _leaf,
        lambda inner: st.one_of(
            st.dictionaries(_keys, inner, min_size=1, max_size=3),
            st.lists(inner, min_size=1, max_size=3),
        ),
        max_leaves=8,
    ),
    max_size=4,
)


def _as_strings(value: Any, raw: bool = False) -> Any:
    """What the SDK puts on the wire: strings, booleans as "true"/"false" — except scalars
    directly in a list, which it sends as `str(value)` ("True"); a list in a list is encoded
    like a dict."""
    if isinstance(value, dict):
        return {key: _as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [
            [_as_strings(x) for x in item] if isinstance(item, list) else _as_strings(item, True)
            for item in value
        ]
    return str(value).lower() if isinstance(value, bool) and not raw else str(value)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(_params)
def test_form_decoder_inverts_sdk_encoder(params: dict[str, Any]):
    """decode_form(untyped) recovers the nested dicts and lists the SDK's form encoder produces."""
    assert decode_form(urlencode(list(_api_encode(params))), typed=False) == _as_strings(params)
