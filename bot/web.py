"""The embedded aiohttp app: Stripe webhook, health and metrics, and the web shop
(bot/web_pages.py) or, without it, plain checkout pages."""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from bot import web_pages
from bot.api.router import Api
from bot.api.routes import mount as mount_api
from bot.clock import Clock, SystemClock
from bot.inbox import Inbox
from bot.oauth import DiscordOAuth
from bot.payments import InvalidSignature
from bot.store import Store
from bot.vault import Vault
from bot.web_shop import WebShop

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # 1 MiB (SPEC §5)


class Metrics:
    """The process's Prometheus metrics, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "shopbot_webhook_requests",
            "Stripe webhook requests",
            ["result"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "shopbot_delivery_jobs",
            "Delivery job attempts by outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )


@dataclass(frozen=True, slots=True)
class WebDeps:
    store: Store
    inbox: Inbox
    metrics: Metrics
    gateway_connected: Callable[[], bool]
    guild_link: Callable[[int], str]
    loops_down: Callable[[], dict[str, str]] = field(default=dict)
    metrics_token: str = ""  # empty: /metrics answers loopback clients only
    # The servers this shop sells in, as (guild id, name): what GET / shows.
    storefronts: Callable[[], list[tuple[int, str]]] = field(default=list)
    # The web shop (SPEC §5b); None: GET / and the checkout pages are the plain ones.
    web_shop: WebShop | None = None
    vault: Vault | None = None
    oauth: DiscordOAuth | None = None  # None: no discord.client_secret, no login
    secure_cookies: bool = True  # public_url is https
    clock: Clock = field(default_factory=SystemClock)
    api: Api | None = None  # the integration API (SPEC §5c), mounted at /api/v1


DEPS = web.AppKey("deps", WebDeps)


def make_app(deps: WebDeps) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[DEPS] = deps
    if deps.web_shop is not None and deps.vault is not None:
        web_pages.install(
            app, deps.web_shop, deps.oauth, deps.vault, deps.clock, secure=deps.secure_cookies
        )
    else:
        app.router.add_get("/", home)
        app.router.add_get("/checkout/success", checkout_success)
        app.router.add_get("/checkout/cancel", checkout_cancel)
    app.router.add_post("/webhooks/stripe", stripe_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if deps.api is not None:
        mount_api(app, deps.api)
    return app


async def stripe_webhook(request: web.Request) -> web.Response:
    """Verify → store by event id → 200. Processing happens in the inbox task."""
    deps = request.app[DEPS]
    if request.content_length is not None and request.content_length > MAX_BODY:
        deps.metrics.webhooks.labels("too_large").inc()
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    payload = await request.read()  # raises 413 past client_max_size when chunked
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        deps.metrics.webhooks.labels("unsigned").inc()
        return web.json_response({"error": "missing Stripe-Signature"}, status=400)
    try:
        event = deps.inbox.verify(payload, signature)
    except InvalidSignature as exc:
        deps.metrics.webhooks.labels("bad_signature").inc()
        log.warning("rejected webhook: %s", exc)
        return web.json_response({"error": "invalid signature or payload"}, status=400)
    fresh = await deps.inbox.receive(event, payload)
    deps.metrics.webhooks.labels("stored" if fresh else "duplicate").inc()
    return web.json_response({"received": True, "duplicate": not fresh})


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;display:flex;
justify-content:center;padding:48px 16px}}main{{background:#fff;border-radius:12px;
max-width:460px;padding:32px;box-shadow:0 2px 12px #0001}}code{{font-size:1.4em;
background:#eef;padding:4px 8px;border-radius:6px}}a.button{{display:inline-block;
margin-top:16px;background:#5865f2;color:#fff;padding:10px 18px;border-radius:8px;
text-decoration:none}}</style></head><body><main>{body}</main></body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        status=status,
    )


async def home(request: web.Request) -> web.Response:
    """The shop's name and a way to its Discord server (the web shop itself is not on)."""
    deps = request.app[DEPS]
    fronts = sorted(deps.storefronts(), key=lambda front: front[1].casefold())
    if not fronts:
        return _page(
            "shopbot",
            "<h1>shopbot</h1><p>This shop is not in any Discord server yet.</p>",
        )
    title = fronts[0][1] if len(fronts) == 1 else "shopbot"
    links = "".join(
        f'<p><a class="button" href="{html.escape(deps.guild_link(guild_id))}">'
        f"Open {html.escape(name)} in Discord</a></p>"
        for guild_id, name in fronts
    )
    body = (
        f"<h1>{html.escape(title)}</h1><p>This shop sells in Discord: in the server, "
        "type <b>/buy</b> to pick a product and pay with Stripe.</p>" + links
    )
    return _page(title, body)


async def checkout_success(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    session_id = request.query.get("session_id", "")
    async with deps.store.reading() as tx:
        order = await tx.orders.by_session(session_id) if session_id else None
        product = await tx.products.get(order.product_id) if order else None
    if order is None or product is None:
        return _page(
            "Order not found",
            "<h1>We could not find that order</h1><p>If you paid, "
            "your purchase is still safe: run <b>/purchases</b> in Discord.</p>",
            404,
        )
    name = html.escape(product.name)
    link = html.escape(deps.guild_link(order.guild_id))
    if order.claim_code:
        detail = (
            f"<p>Your claim code:</p><p><code>{html.escape(order.claim_code)}</code></p>"
            "<p>Your access is being delivered in Discord right now.</p>"
        )
    else:
        detail = (
            "<p>Your payment is being confirmed. Your access arrives in Discord as soon "
            "as Stripe tells us it went through; run <b>/purchases</b> to check.</p>"
        )
    body = (
        f"<h1>Thank you!</h1><p>Order #{order.id}: <b>{name}</b></p>{detail}"
        f'<a class="button" href="{link}">Back to the server</a>'
    )
    return _page("Thank you", body)


async def checkout_cancel(request: web.Request) -> web.Response:
    return _page(
        "Checkout canceled",
        "<h1>Checkout canceled</h1><p>Nothing was charged. "
        "You can start again with <b>/buy</b> in Discord.</p>",
    )


async def healthz(request: web.Request) -> web.Response:
    """Process, background loops, database and gateway; 503 naming what is down. Never
    writes and never waits long: a database another process holds locked is reported."""
    deps = request.app[DEPS]
    down = dict(deps.loops_down())
    checks: dict[str, object] = {
        "process": True,
        "database": False,
        "gateway": deps.gateway_connected(),
        "loops": not down,
    }
    locked_for = deps.store.locked_for()
    if locked_for is not None:
        down["database"] = f"locked by another process for {locked_for:.0f} s"
    else:
        try:
            async with asyncio.timeout(2.0):
                checks["database"] = await deps.store.ping()
        except Exception as exc:
            down["database"] = f"not reachable: {type(exc).__name__}"
    ok = all(value is True for value in checks.values())
    body = {"ok": ok, **checks}
    if down:
        body["down"] = down
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; `http.metrics_token` as a Bearer token, or loopback clients only."""
    deps = request.app[DEPS]
    if deps.metrics_token:
        sent = request.headers.get("Authorization", "")
        expected = f"Bearer {deps.metrics_token}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return web.json_response({"error": "metrics need the metrics token"}, status=401)
    elif not _loopback(request.remote):
        return web.json_response(
            {"error": "metrics answer local clients only; set http.metrics_token"}, status=403
        )
    body = generate_latest(deps.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
