"""The web handlers through aiohttp's test client: webhook intake, checkout pages, health."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.web import MAX_BODY, Metrics, WebDeps, make_app
from tests.fakes.stripe.webhooks import STRIPE_WEBHOOK_HEADERS, encode_event, sign_payload
from tests.unit.world import GUILD, SECRET, World, add_product


class Web:
    def __init__(self, client: TestClient, world: World) -> None:
        self.client = client
        self.world = world
        self.gateway = True
        self.down: dict[str, str] = {}
        self.storefronts: list[tuple[int, str]] = []

    async def post_event(self, body: bytes, signature: str | None) -> tuple[int, dict]:
        headers = dict(STRIPE_WEBHOOK_HEADERS)
        if signature is not None:
            headers["Stripe-Signature"] = signature
        async with self.client.post("/webhooks/stripe", data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    def stored_events(self) -> list[tuple[str, str]]:
        return self.world.rows("SELECT id, status FROM webhook_events ORDER BY id")


@pytest_asyncio.fixture
async def web(world: World, request: pytest.FixtureRequest) -> AsyncIterator[Web]:
    holder: list[Web] = []
    deps = WebDeps(
        store=world.store,
        inbox=world.inbox,
        metrics=Metrics(),
        gateway_connected=lambda: holder[0].gateway,
        guild_link=lambda guild_id: f"https://discord.com/channels/{guild_id}",
        loops_down=lambda: holder[0].down,
        metrics_token=getattr(request, "param", ""),
        storefronts=lambda: holder[0].storefronts,
    )
    client = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    holder.append(Web(client, world))
    try:
        yield holder[0]
    finally:
        await client.close()


async def paid_checkout_event(world: World, name: str = "VIP") -> tuple[dict, str]:
    await add_product(world, name)
    order, _ = await world.shop.start_checkout(GUILD, 2, name.lower())
    event = world.stripe.complete_checkout(order.stripe_session_id)
    return dict(event), str(order.stripe_session_id)


async def test_signed_event_is_stored_once(web: Web) -> None:
    """A signed event is committed before the 200; its redelivery is acknowledged, not kept."""
    event, _ = await paid_checkout_event(web.world)
    body = encode_event(event)
    status, answer = await web.post_event(body, sign_payload(body, SECRET))
    assert (status, answer) == (200, {"received": True, "duplicate": False})
    assert web.stored_events() == [(event["id"], "received")]
    status, answer = await web.post_event(body, sign_payload(body, SECRET))
    assert (status, answer) == (200, {"received": True, "duplicate": True})
    assert len(web.stored_events()) == 1


async def test_unsigned_forged_and_oversized_bodies_store_nothing(web: Web) -> None:
    """No signature, a wrong secret or a tampered body get 400; past 1 MiB 413; nothing kept."""
    event, _ = await paid_checkout_event(web.world)
    body = encode_event(event)
    assert (await web.post_event(body, None))[0] == 400
    assert (await web.post_event(body, sign_payload(body, "whsec_other")))[0] == 400
    tampered = body.replace(b'"paid"', b'"unpaid"', 1)
    assert tampered != body
    assert (await web.post_event(tampered, sign_payload(body, SECRET)))[0] == 400
    huge = b"{" + b" " * MAX_BODY + b"}"
    headers = {"Stripe-Signature": sign_payload(huge, SECRET)}
    async with web.client.post("/webhooks/stripe", data=huge, headers=headers) as resp:
        assert resp.status == 413
    assert web.stored_events() == []


async def test_success_page_names_the_order_and_escapes(web: Web) -> None:
    """The success page shows the product (HTML-escaped); an unknown session is a 404."""
    event, session_id = await paid_checkout_event(web.world, "<b>VIP</b>")
    await web.world.deliver(event)
    async with web.client.get("/checkout/success", params={"session_id": session_id}) as resp:
        page = await resp.text()
        assert resp.status == 200
    assert "&lt;b&gt;VIP&lt;/b&gt;" in page and "<b>VIP</b>" not in page
    assert f"https://discord.com/channels/{GUILD}" in page
    async with web.client.get("/checkout/success", params={"session_id": "cs_nope"}) as resp:
        assert resp.status == 404
    async with web.client.get("/checkout/cancel") as resp:
        assert resp.status == 200 and "Nothing was charged" in await resp.text()


async def test_home_page_names_the_shop_and_links_the_server(web: Web) -> None:
    """Issue 10: GET / with the web shop off shows the shop's name (escaped) and a link to
    its Discord server, not aiohttp's bare "404: Not Found"."""
    web.storefronts = [(GUILD, "<Cool> & Co")]
    async with web.client.get("/") as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
    assert "<title>&lt;Cool&gt; &amp; Co</title>" in page and "<Cool>" not in page
    assert f'href="https://discord.com/channels/{GUILD}"' in page and "/buy" in page
    web.storefronts = [(GUILD, "Zeta"), (GUILD + 1, "Alpha")]
    async with web.client.get("/") as resp:
        page = await resp.text()
    assert page.index("Open Alpha in Discord") < page.index("Open Zeta in Discord")
    assert f"https://discord.com/channels/{GUILD + 1}" in page
    web.storefronts = []
    async with web.client.get("/") as resp:
        assert resp.status == 200 and "not in any Discord server yet" in await resp.text()


async def test_healthz_names_what_is_down_and_metrics_count(web: Web) -> None:
    """/healthz is 200 with the database writable and the gateway up, 503 naming the gateway."""
    async with web.client.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "ok": True,
            "process": True,
            "database": True,
            "gateway": True,
            "loops": True,
        }
    web.gateway = False
    async with web.client.get("/healthz") as resp:
        assert resp.status == 503 and (await resp.json())["gateway"] is False
    await web.post_event(b"{}", None)
    async with web.client.get("/metrics") as resp:
        text = await resp.text()
    assert 'shopbot_webhook_requests_total{result="unsigned"} 1.0' in text


async def test_healthz_names_a_crashed_loop_and_never_writes(web: Web) -> None:
    """Issue 9 items 1 and 11: a loop that is down makes /healthz 503 naming it; a GET takes
    no write lock (it used to BEGIN IMMEDIATE and write meta under the webhooks' lock)."""
    web.down["delivery"] = "OperationalError: disk I/O error"
    async with web.client.get("/healthz") as resp:
        body = await resp.json()
        assert resp.status == 503
    assert body["loops"] is False and body["down"] == {
        "delivery": "OperationalError: disk I/O error"
    }
    web.down.clear()
    with sqlite3.connect(web.world.store.db.path) as other:  # another process writes meanwhile
        other.execute("BEGIN IMMEDIATE")
        async with web.client.get("/healthz") as resp:
            assert resp.status == 200
        other.rollback()
    assert web.world.rows("SELECT COUNT(*) FROM meta WHERE key='healthz'") == [(0,)]


async def test_healthz_reports_a_database_locked_by_another_process(web: Web) -> None:
    """While a write waits out another process's lock, /healthz says so instead of hanging."""
    event, _ = await paid_checkout_event(web.world)
    body = encode_event(event)
    with sqlite3.connect(web.world.store.db.path, timeout=0) as other:
        other.execute("BEGIN EXCLUSIVE")
        post = asyncio.create_task(web.post_event(body, sign_payload(body, SECRET)))
        await until(lambda: web.world.store.locked_for() is not None)
        async with web.client.get("/healthz") as resp:
            answer = await resp.json()
            assert resp.status == 503
        assert "locked by another process" in answer["down"]["database"]
        assert not post.done()  # the webhook waits: not acknowledged, so not lost
        other.rollback()
    assert (await post)[0] == 200
    assert web.stored_events() == [(event["id"], "received")]
    async with web.client.get("/healthz") as resp:
        assert resp.status == 200


@pytest.mark.parametrize("web", ["s3cret-token"], indirect=True)
async def test_metrics_need_the_token_when_one_is_set(web: Web) -> None:
    async with web.client.get("/metrics") as resp:
        assert resp.status == 401
    headers = {"Authorization": "Bearer wrong"}
    async with web.client.get("/metrics", headers=headers) as resp:
        assert resp.status == 401
    headers = {"Authorization": "Bearer s3cret-token"}
    async with web.client.get("/metrics", headers=headers) as resp:
        assert resp.status == 200 and "shopbot_webhook_requests" in await resp.text()


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
