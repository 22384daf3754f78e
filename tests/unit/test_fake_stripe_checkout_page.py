"""The fake Stripe's session expiry, hosted Checkout page and pushed webhooks, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import stripe
from aiohttp import web

from tests.fakes.stripe import FakeClock, FakeStripe
from tests.fakes.stripe.fixtures import make_client
from tests.unit.test_fake_stripe import SECRET, START, payment_params, subscription_params


@dataclass
class Receiver:
    """A webhook endpoint that verifies signatures with the SDK and can fail on purpose."""

    url: str = ""
    fail_first: int = 0
    received: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, then answer 500 for the first `fail_first` calls, 200 after."""
        try:
            event = stripe.Webhook.construct_event(
                await request.read(), request.headers.get("Stripe-Signature"), SECRET
            )
        except stripe.SignatureVerificationError:
            self.answers.append(400)
            return web.Response(status=400)
        status = 500 if len(self.answers) < self.fail_first else 200
        self.answers.append(status)
        if status == 200:
            self.received.append(event.type + " " + event.id)
        return web.Response(status=status)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at START."""
    return FakeClock(START)


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeStripe]:
    """A running fake whose sessions get a payable page."""
    async with FakeStripe(clock=clock, hosted_checkout=True) as running:
        yield running


@pytest.fixture
async def client(fake: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    """The real async SDK client."""
    http_client = stripe.AIOHTTPClient()
    yield make_client(fake, http_client)
    await http_client.close_async()
    assert fake.internal_errors == []


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local webhook endpoint."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/stripe", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/stripe"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that shows each redirect instead of following it."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_expire_refuses_a_completed_session(fake: FakeStripe, client: stripe.StripeClient):
    """Like Stripe, only an open session can be expired: a paid one is a 400."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    fake.complete_checkout(session.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.checkout.sessions.expire_async(session.id)
    assert caught.value.http_status == 400
    assert 'status of "complete"' in str(caught.value.user_message)
    assert fake.events_of_type("checkout.session.expired") == []


async def test_sessions_expire_at_expires_at_on_the_fake_clock(
    fake: FakeStripe, client: stripe.StripeClient, clock: FakeClock
):
    """expire_due_sessions() expires open sessions once their expires_at has come, once."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    clock.advance(3599)
    assert fake.expire_due_sessions() == []
    clock.advance(1)
    [event] = fake.expire_due_sessions()
    assert event["type"] == "checkout.session.expired"
    assert event["data"]["object"]["id"] == session.id
    assert (await client.v1.checkout.sessions.retrieve_async(session.id)).status == "expired"
    assert fake.expire_due_sessions() == []


async def test_hosted_checkout_page_pays_and_redirects(
    fake: FakeStripe,
    client: stripe.StripeClient,
    receiver: Receiver,
    browser: aiohttp.ClientSession,
):
    """The session url is the fake's page naming product and amount; Pay completes the
    checkout like complete_checkout, pushes the signed events and 303s to success_url."""
    fake.push_webhooks(receiver.url, SECRET)
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    assert session.url == f"{fake.api_base}/c/pay/{session.id}"
    async with browser.get(session.url) as page:
        text = await page.text()
    assert page.status == 200 and "VIP" in text and "4.99 USD" in text
    assert "id='pay'" in text and "href='https://shop.test/checkout/cancel'" in text
    async with browser.post(session.url, allow_redirects=False) as paid:
        assert paid.status == 303
        assert paid.headers["Location"] == (
            f"https://shop.test/checkout/success?session_id={session.id}"
        )
    assert fake.sessions[session.id]["status"] == "complete"
    [completed] = fake.events_of_type("checkout.session.completed")
    await fake.wait_webhooks_idle()
    assert f"checkout.session.completed {completed['id']}" in receiver.received
    assert len(receiver.received) == len(fake.events) and 400 not in receiver.answers
    assert fake.events[completed["id"]]["pending_webhooks"] == 0
    async with browser.get(session.url) as again:
        text = await again.text()
    assert "already complete" in text and "id='pay'" not in text
    async with browser.post(session.url, allow_redirects=False) as twice:
        assert twice.status == 400
    assert len(fake.events_of_type("checkout.session.completed")) == 1
    assert [(m, s) for m, _, s in fake.checkout_page_requests] == [
        ("GET", 200),
        ("POST", 303),
        ("GET", 200),
        ("POST", 400),
    ]


async def test_hosted_page_of_an_expired_session(
    fake: FakeStripe, client: stripe.StripeClient, clock: FakeClock, browser: aiohttp.ClientSession
):
    """A session past expires_at is expired when its page is opened and cannot be paid."""
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    clock.advance(3600)
    async with browser.get(str(session.url)) as page:
        assert "has expired" in await page.text()
    async with browser.post(str(session.url), allow_redirects=False) as paid:
        assert paid.status == 400
    assert fake.sessions[session.id]["status"] == "expired"
    assert len(fake.events_of_type("checkout.session.expired")) == 1
    assert fake.events_of_type("checkout.session.completed") == []
    async with browser.get(f"{fake.api_base}/c/pay/cs_test_nope") as missing:
        assert missing.status == 404


async def test_hosted_page_shows_subscription_terms(
    fake: FakeStripe, client: stripe.StripeClient, browser: aiohttp.ClientSession
):
    """A subscription with a trial: nothing due today, then the price per interval."""
    session = await client.v1.checkout.sessions.create_async(params=subscription_params(7))
    async with browser.get(str(session.url)) as page:
        text = await page.text()
    assert "Total due today: 0.00 USD" in text
    assert "Then 4.99 USD / month" in text and "7-day free trial" in text


async def test_pushed_webhooks_are_retried_until_accepted(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
):
    """A failing endpoint gets the event again after each back-off; it counts as delivered
    once answered 2xx. Unsubscribed event types are not sent."""
    receiver.fail_first = 2
    fake.push_webhooks(
        receiver.url,
        SECRET,
        enabled_events=("checkout.session.completed",),
        retry_delays=(0.01, 0.01, 0.01),
    )
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    event = fake.complete_checkout(session.id)
    await fake.wait_webhooks_idle()
    assert [(a.event_id, a.attempt, a.status) for a in fake.webhook_attempts] == [
        (event["id"], 1, 500),
        (event["id"], 2, 500),
        (event["id"], 3, 200),
    ]
    assert receiver.received == [f"checkout.session.completed {event['id']}"]
    assert fake.events[event["id"]]["pending_webhooks"] == 0


async def test_pushed_webhooks_give_up_and_stay_undelivered(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
):
    """After the last retry the event stays pending: listed with delivery_success=false."""
    receiver.fail_first = 99
    fake.push_webhooks(
        receiver.url,
        SECRET,
        enabled_events=("checkout.session.expired",),
        retry_delays=(0.01, 0.01),
    )
    session = await client.v1.checkout.sessions.create_async(params=payment_params())
    await client.v1.checkout.sessions.expire_async(session.id)
    await fake.wait_webhooks_idle()
    assert [a.status for a in fake.webhook_attempts] == [500, 500, 500]
    undelivered = await client.v1.events.list_async(params={"delivery_success": False})
    assert fake.events_of_type("checkout.session.expired")[0]["id"] in {
        e.id for e in undelivered.data
    }
