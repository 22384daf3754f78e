"""Outbound webhooks through the real process: an endpoint made with the CLI receives a
signed order.paid after a checkout."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.e2e.test_cli import run_cli
from tests.shop import BUYER, Shop


def signature_ok(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check from docs/API.md (Outbound webhooks)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(expected.hexdigest(), parts["v1"])


async def test_outbound_webhook_order_paid_after_checkout(shop: Shop) -> None:
    """`shopbot webhook create` → /buy → pay → the receiver gets order.paid, correctly
    signed, and `webhook deliveries` shows the 200."""
    received: list[dict[str, Any]] = []
    secret_box: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_ok(secret_box[0], request.headers["Shopbot-Signature"], body):
            return web.Response(status=400)
        received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    try:
        config = ["--config", str(shop.bot.config_path)]
        url = str(server.make_url("/hook"))
        created = await run_cli(
            *config, "webhook", "create", "--url", url, "--events", "order.paid"
        )
        assert created.returncode == 0, created.stderr
        found = re.search(r"whsec_\w+", created.stdout)
        assert found is not None
        secret_box.append(found.group(0))
        await shop.add_product("VIP", "4.99")
        await shop.pay(await shop.buy(BUYER, "VIP"))
        await shop.wait(lambda: received, "order.paid received")
        [event] = received
        assert event["type"] == "order.paid" and event["data"]["user_id"] == BUYER
        assert event["id"].startswith("evt_")
        log = await run_cli(*config, "webhook", "deliveries", "1")
        assert log.returncode == 0 and "\torder.paid\t" in log.stdout and "\t204\tok" in log.stdout
    finally:
        await server.close()
