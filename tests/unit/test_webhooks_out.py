"""Outbound webhooks (SPEC §5c): endpoints, signed events planned with their fact, retries
with the same id, backoff up to 3 days, then the endpoint disabled with an admin notice."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import parse_iso
from bot.webhooks_out import GIVE_UP, WebhookInputError, retry_delay
from tests.unit.world import ADMIN, GUILD, World, add_product, buy

LOG = 4242


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """A receiver's check, written from the docs only: t=<unix>,v1=<hex HMAC of "t.body">."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(
        expected.hexdigest(), parts["v1"]
    )


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)  # statuses to give, then 200
    got: list[tuple[str, bytes]] = field(default_factory=list)  # (signature header, body)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        state.got.append((request.headers.get("Shopbot-Signature", ""), await request.read()))
        return web.Response(status=state.answers.pop(0) if state.answers else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url("/hook"))
    try:
        yield state
    finally:
        await server.close()


def events_of(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in receiver.got]


async def test_webhook_order_paid_signed_and_retried_with_the_same_id(
    world: World, receiver: Receiver
) -> None:
    """A receiver answering 500 twice then 200 gets order.paid three times, same id, each
    with a valid signature; the endpoint's log shows the three attempts."""
    endpoint, secret = await world.services.webhooks.create(receiver.url, "order.paid")
    await add_product(world, "Gold")
    receiver.answers = [500, 500]
    order = await buy(world, "Gold")
    await world.run_jobs()
    for _ in range(2):
        world.advance(seconds=retry_delay(2) + 1)
        await world.run_jobs()
    events = events_of(receiver)
    assert [e["type"] for e in events] == ["order.paid"] * 3
    assert len({e["id"] for e in events}) == 1
    assert events[0]["data"]["order_id"] == order.id and events[0]["data"]["status"] == "paid"
    assert set(events[0]) == {"id", "type", "created", "data"}
    now = int(world.clock.now().timestamp())
    assert all(verify(secret, sig, body, now, tolerance=3600) for sig, body in receiver.got)
    assert not verify("whsec_wrong", *receiver.got[0], now, tolerance=3600)
    log = await world.services.webhooks.deliveries(endpoint.id)
    assert log is not None
    assert [a.status_code for a in reversed(log)] == [500, 500, 200]
    assert [a.error for a in reversed(log)] == ["HTTP 500", "HTTP 500", None]


async def test_webhook_events_only_to_subscribed_enabled_endpoints(
    world: World, receiver: Receiver
) -> None:
    """An endpoint gets the events it asked for (refund → order.refunded, access.ended),
    not others; a deleted endpoint gets nothing more."""
    await world.services.webhooks.create(receiver.url, "order.refunded,access.ended")
    other, _ = await world.services.webhooks.create(receiver.url, ["access.granted"])
    await world.services.webhooks.delete(other.id)
    await add_product(world, "Gold")
    order = await buy(world, "Gold")
    await world.run_jobs()
    assert receiver.got == []
    world.stripe.refund(order.stripe_payment_intent_id or "")
    await world.flush()
    await world.run_jobs()
    assert sorted(e["type"] for e in events_of(receiver)) == ["access.ended", "order.refunded"]
    ended = next(e for e in events_of(receiver) if e["type"] == "access.ended")
    assert ended["data"]["reason"] == "refund" and ended["data"]["status"] == "revoked"


async def test_webhook_failing_for_3_days_disables_endpoint_with_notice(
    world: World, receiver: Receiver
) -> None:
    """A receiver down for the whole window: retries back off up to 6 h, and after 3 days
    the job fails, the endpoint is disabled and the admin log channel says so."""
    await world.services.notices.set_log_channel(GUILD, ADMIN, LOG)
    endpoint, _ = await world.services.webhooks.create(receiver.url, "order.paid")
    await add_product(world, "Gold")
    receiver.answers = [503] * 1000
    await buy(world, "Gold")
    start = world.clock.now()
    await world.run_jobs()
    delays = []
    for _ in range(100):
        jobs = world.rows("SELECT status, next_attempt_at FROM delivery_jobs WHERE kind='webhook'")
        if jobs[0][0] != "pending":
            break
        wait = parse_iso(jobs[0][1]) - world.clock.now()
        delays.append(wait.total_seconds())
        world.advance(seconds=wait.total_seconds() + 1)
        await world.run_jobs()
    assert jobs[0][0] == "failed"
    assert world.clock.now() - start >= GIVE_UP
    assert world.clock.now() - start < GIVE_UP + timedelta(hours=7)
    assert delays[0] == pytest.approx(60, abs=1) and max(delays) <= 6 * 3600 + 1
    assert delays == sorted(delays)  # backoff never shrinks
    [listed] = await world.services.webhooks.list()
    assert listed.id == endpoint.id and not listed.enabled
    notices = world.rows("SELECT kind, text FROM log_notices WHERE kind='webhook_disabled'")
    assert len(notices) == 1 and receiver.url in notices[0][1]
    attempts = len(receiver.got)
    await buy(world, "Gold", user=77)  # disabled: nothing more is planned or sent
    await world.run_jobs()
    assert len(receiver.got) == attempts


async def test_webhook_create_refuses_bad_url_and_events(world: World) -> None:
    """Bad URLs and unknown event names are refused with the known list; nothing written."""
    for url, events in (
        ("ftp://x.test/h", "order.paid"),
        ("not a url", "order.paid"),
        ("https://x.test/h", "order.payed"),
        ("https://x.test/h", " , "),
    ):
        with pytest.raises(WebhookInputError):
            await world.services.webhooks.create(url, events)
    assert await world.services.webhooks.list() == []
    with pytest.raises(WebhookInputError, match=r"unknown event order\.payed; known: order\.paid"):
        await world.services.webhooks.create("https://x.test/h", "order.payed")
    assert not await world.services.webhooks.delete(99)
    assert await world.services.webhooks.deliveries(99) is None


async def test_webhook_delivery_failed_and_dispute_events(world: World, receiver: Receiver) -> None:
    """A delivery that fails for good emits delivery.failed; a dispute emits order.disputed."""
    await world.services.webhooks.create(receiver.url, "delivery.failed,order.disputed")
    await add_product(world, "Gold")
    world.discord.refuse.add(2)  # BUYER: Missing Permissions on the role
    order = await buy(world, "Gold")
    await world.run_jobs()
    world.stripe.dispute(order.stripe_payment_intent_id or "")
    await world.flush()
    await world.run_jobs()
    events = events_of(receiver)
    # the grant failed; so did taking the role back after the dispute
    assert [(e["type"], e["data"].get("kind")) for e in events] == [
        ("delivery.failed", "grant_role"),
        ("order.disputed", None),
        ("delivery.failed", "revoke_role"),
    ]
    assert "Missing Permissions" in events[0]["data"]["error"]
    assert events[1]["data"]["order_id"] == order.id


async def test_webhook_subscription_renewed_payment_failed_and_access_events(
    world: World, receiver: Receiver
) -> None:
    """A subscription's life as events: access.granted, subscription.renewed,
    subscription.payment_failed, access.ended (canceled); each once."""
    await world.services.webhooks.create(
        receiver.url,
        "access.granted,access.ended,subscription.renewed,subscription.payment_failed",
    )
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id or ""
    world.advance(days=31)
    world.stripe.renew_subscription(sub_id)
    await world.flush()
    world.advance(days=28)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    world.stripe.cancel_subscription(sub_id)
    await world.flush()
    await world.flush()  # nothing new: no event twice
    await world.run_jobs()
    events = events_of(receiver)
    assert [e["type"] for e in events] == [
        "access.granted",
        "subscription.renewed",
        "subscription.payment_failed",
        "access.ended",
    ]
    assert events[1]["data"]["subscription_id"] == sub_id
    assert events[3]["data"]["reason"] == "canceled"
