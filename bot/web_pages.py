"""The web shop's pages: shop, product, buy (CSRF), Discord login, success/pending/cancel.

Server-rendered with Jinja2 (autoescaped templates in bot/templates/), one stylesheet
(bot/static/shop.css), no third-party scripts. The browser session is an encrypted cookie
(aiohttp-session's EncryptedCookieStorage, Fernet) holding the CSRF token, the OAuth
`state` while a login is under way, and the logged-in Discord user with their access token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.clock import Clock, iso, parse_iso
from bot.errors import Conflict, Forbidden, InvalidInput, NotFound, PaymentError, ShopError
from bot.money import format_price
from bot.oauth import DiscordOAuth, OAuthRefused, OAuthUnavailable
from bot.vault import Vault
from bot.web_shop import OrderView, WebBuyer, WebShop, token_expiry

log = logging.getLogger(__name__)

COOKIE = "shopbot_session"
SESSION_SECONDS = 24 * 3600
REFRESH_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Pages:
    shop: WebShop
    oauth: DiscordOAuth | None  # None: no client secret, no "Log in with Discord"
    clock: Clock
    templates: jinja2.Environment
    css: bytes


PAGES = web.AppKey("web_pages", Pages)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def install(
    app: web.Application,
    shop: WebShop,
    oauth: DiscordOAuth | None,
    vault: Vault,
    clock: Clock,
    *,
    secure: bool,
) -> None:
    """Add the web shop's session middleware and routes to `app`."""
    storage = EncryptedCookieStorage(
        vault.cookie_key,
        cookie_name=COOKIE,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=secure,
    )
    aiohttp_session.setup(app, storage)
    css = resources.files("bot").joinpath("static/shop.css").read_bytes()
    app[PAGES] = Pages(shop, oauth, clock, templates(), css)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/", index),
        ("GET", "/static/shop.css", stylesheet),
        ("GET", "/shop/{guild_id}", shop_page),
        ("GET", "/shop/{guild_id}/{product_id}", product_page),
        ("POST", "/shop/{guild_id}/{product_id}/buy", buy),
        ("GET", "/login", login),
        ("GET", "/oauth/callback", oauth_callback),
        ("POST", "/logout", logout),
        ("GET", "/checkout/success", checkout_success),
        ("GET", "/checkout/cancel", checkout_cancel),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))
    if oauth is not None:
        app.on_cleanup.append(lambda _app: oauth.close())


# rendering -------------------------------------------------------------------------------


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    pages = request.app[PAGES]
    session = await aiohttp_session.get_session(request)
    user = _user(session, pages.clock)
    context.setdefault("title", context.get("brand") or "Shop")
    context.setdefault("brand", None)
    context.setdefault("home_url", "/")
    context.setdefault("refresh", None)
    html = pages.templates.get_template(template).render(
        login_enabled=pages.oauth is not None,
        user=user,
        csrf=csrf_token(session),
        **context,
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; script-src 'unsafe-inline'; img-src 'self' https:;"
        " frame-ancestors 'none'; base-uri 'none'"
    )
    return response


async def error_page(
    request: web.Request, status: int, heading: str, message: str, **context: Any
) -> web.Response:
    context.setdefault("retry_url", None)
    context.setdefault("server_link", None)
    return await render(
        request, "error.html", status=status, title=heading, heading=heading, message=message,
        **context,
    )  # fmt: skip


_STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, InvalidInput: 400, PaymentError: 502}


def _guarded(handler: Handler) -> Handler:
    """Domain refusals become a clear HTML page with the right 4xx/5xx status."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ShopError as exc:
            status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
            heading = {404: "Not found", 403: "Not allowed", 409: "Not possible right now"}.get(
                status, "Something went wrong"
            )
            return await error_page(request, status, heading, exc.user_message)

    return guarded


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[PAGES].css,
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


# session, CSRF, login state ---------------------------------------------------------------


def csrf_token(session: aiohttp_session.Session) -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def _check_csrf(request: web.Request) -> dict[str, str] | None:
    """The form if its CSRF token is the session's; None otherwise (forged or missing)."""
    form = await request.post()
    session = await aiohttp_session.get_session(request)
    expected = session.get("csrf")
    sent = form.get("csrf_token")
    if not isinstance(expected, str) or not isinstance(sent, str):
        return None
    if not hmac.compare_digest(expected.encode(), sent.encode()):
        return None
    return {key: str(value) for key, value in form.items()}


async def _forged(request: web.Request) -> web.Response:
    return await error_page(
        request,
        403,
        "This form has expired",
        "The form was not sent from this page (or your session ended), so nothing was done. "
        "Go back, reload the page and try again.",
    )


@dataclass(frozen=True, slots=True)
class SessionUser:
    id: int
    name: str


def _user(session: aiohttp_session.Session, clock: Clock) -> SessionUser | None:
    buyer = _buyer(session, clock)
    return None if buyer is None else SessionUser(buyer.user_id, buyer.name)


def _buyer(session: aiohttp_session.Session, clock: Clock) -> WebBuyer | None:
    data = session.get("user")
    if not isinstance(data, dict):
        return None
    expires = parse_iso(str(data["exp"]))
    if expires <= clock.now():
        return None
    return WebBuyer(
        user_id=int(data["id"]),
        name=str(data["name"]),
        access_token=data.get("token") or None,
        token_expires_at=expires,
    )


def local_path(target: str) -> str | None:
    """`target` if it is a path on this site (no scheme, host, `//` or backslash); else None."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _ids(request: web.Request, *names: str) -> list[int]:
    values = []
    for name in names:
        text = request.match_info[name]
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            raise NotFound("There is nothing at this address.")
        values.append(int(text))
    return values


# shop pages ------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """The guilds' shops: one guild's products directly, or the list of guilds."""
    shop = request.app[PAGES].shop
    fronts = shop.storefronts()
    if len(fronts) == 1:
        return await _shop(request, fronts[0].guild_id)
    links = {front.guild_id: shop.guild_link(front.guild_id) for front in fronts}
    return await render(request, "index.html", title="shopbot", fronts=fronts, links=links)


async def shop_page(request: web.Request) -> web.Response:
    (guild_id,) = _ids(request, "guild_id")
    return await _shop(request, guild_id)


async def _shop(request: web.Request, guild_id: int) -> web.Response:
    shop = request.app[PAGES].shop
    front = await shop.with_products(shop.storefront(guild_id))
    return await render(
        request,
        "shop.html",
        title=front.name,
        brand=front.name,
        home_url=f"/shop/{guild_id}",
        front=front,
        server_link=shop.guild_link(guild_id),
    )


async def product_page(request: web.Request) -> web.Response:
    guild_id, product_id = _ids(request, "guild_id", "product_id")
    front, view = await request.app[PAGES].shop.product(guild_id, product_id)
    session = await aiohttp_session.get_session(request)
    return await render(
        request,
        "product.html",
        title=f"{view.product.name} · {front.name}",
        brand=front.name,
        home_url=f"/shop/{guild_id}",
        front=front,
        view=view,
        here=f"/shop/{guild_id}/{product_id}",
        declined=bool(session.get("declined")),
    )


async def buy(request: web.Request) -> web.StreamResponse:
    """POST with the session's CSRF token → 303 to Stripe Checkout."""
    pages = request.app[PAGES]
    guild_id, product_id = _ids(request, "guild_id", "product_id")
    form = await _check_csrf(request)
    if form is None:
        return await _forged(request)
    session = await aiohttp_session.get_session(request)
    buyer = _buyer(session, pages.clock)
    chose_code = form.get("without_login") == "1" or bool(session.get("declined"))
    if buyer is None and pages.oauth is not None and not chose_code:
        here = f"/shop/{guild_id}/{product_id}"
        raise web.HTTPSeeOther(f"/login?next={quote(here, safe='/')}")
    url = await pages.shop.checkout(guild_id, product_id, buyer)
    raise web.HTTPSeeOther(url)


# Discord login ---------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    pages = request.app[PAGES]
    if pages.oauth is None:
        raise NotFound("This shop does not offer logging in with Discord.")
    target = local_path(request.query.get("next", "/"))
    if target is None:
        return await error_page(
            request,
            400,
            "That link is not allowed",
            "After logging in we only send you back to pages of this shop, and this link "
            "pointed somewhere else. Nothing was done.",
        )
    session = await aiohttp_session.get_session(request)
    state = secrets.token_urlsafe(32)
    session["oauth_state"] = state
    session["oauth_next"] = target
    try:
        url = pages.oauth.authorize_url(state)
    except OAuthUnavailable:
        return await error_page(
            request, 503, "Login is not ready", "The shop is still starting; try again shortly."
        )
    raise web.HTTPFound(url)


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    """Discord sends the browser back here with `code` and `state` (or `error`)."""
    pages = request.app[PAGES]
    if pages.oauth is None:
        raise NotFound("This shop does not offer logging in with Discord.")
    session = await aiohttp_session.get_session(request)
    expected = session.pop("oauth_state", None)
    target = local_path(str(session.pop("oauth_next", "/"))) or "/"
    sent = request.query.get("state", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        return await error_page(
            request,
            400,
            "This login did not start here",
            "The login answer does not belong to this browser's session (it may be old, or "
            "from another tab), so you were not logged in. Start the login again from the shop.",
        )
    if "error" in request.query:  # the buyer declined at Discord: go on without a login
        session["declined"] = True
        raise web.HTTPFound(target)
    code = request.query.get("code", "")
    if not code:
        raise InvalidInput("Discord sent no login code; please log in again.")
    try:
        grant = await pages.oauth.exchange(code)
        user = await pages.oauth.user(grant)
    except OAuthRefused as exc:
        return await error_page(request, 400, "Login failed", str(exc), retry_url=target)
    except OAuthUnavailable as exc:
        log.warning("discord login failed: %s", exc)
        return await error_page(
            request,
            502,
            "Discord did not answer",
            "We could not finish logging you in with Discord; nothing was done. Try again.",
            retry_url=target,
        )
    expires: datetime = token_expiry(pages.clock.now(), grant.expires_in)
    session["user"] = {
        "id": str(user.id),
        "name": user.name,
        "token": grant.access_token if "guilds.join" in grant.scopes else "",
        "exp": iso(expires),
    }
    session.pop("declined", None)
    log.info("web shop login by Discord user %s", user.id)
    raise web.HTTPFound(target)


async def logout(request: web.Request) -> web.StreamResponse:
    if await _check_csrf(request) is None:
        return await _forged(request)
    session = await aiohttp_session.get_session(request)
    session.clear()
    raise web.HTTPSeeOther("/")


# after Stripe ----------------------------------------------------------------------------


async def checkout_success(request: web.Request) -> web.Response:
    shop = request.app[PAGES].shop
    try:
        view = await shop.order_by_session(request.query.get("session_id", ""))
    except NotFound:
        return await error_page(
            request,
            404,
            "We could not find that order",
            "If you paid, your purchase is still safe: it is delivered in Discord "
            "(run /purchases there), and the receipt from Stripe has your order number.",
        )
    return await _order_page(request, view)


async def checkout_cancel(request: web.Request) -> web.Response:
    shop = request.app[PAGES].shop
    order_text, token = request.query.get("order", ""), request.query.get("token", "")
    if not token:  # a link from before cancel tokens existed: nothing to close
        return await error_page(
            request, 200, "Checkout canceled", "Nothing was charged. You can start again."
        )
    if not order_text.isascii() or not order_text.isdigit() or len(order_text) > 18:
        raise NotFound("We could not find that checkout.")
    view = await shop.cancel(int(order_text), token)
    return await _order_page(request, view)


async def _order_page(request: web.Request, view: OrderView) -> web.Response:
    shop = request.app[PAGES].shop
    order = view.order
    summary = (
        f"Order #{order.id}: {view.product.name} from {view.shop.name}, "
        f"{format_price(order.amount, order.currency)}"
    )
    if view.product.kind == "subscription":
        summary += f" / {view.product.interval}"
    invite = (
        await shop.invite(order.guild_id, view.product.id)
        if view.state in ("claim", "join_failed")
        else shop.guild_link(order.guild_id)
    )
    return await render(
        request,
        "order.html",
        title={"pending": "Confirming payment", "closed": "Checkout canceled"}.get(
            view.state, "Thank you"
        ),
        brand=view.shop.name,
        home_url=f"/shop/{order.guild_id}",
        view=view,
        state=view.state,
        summary=summary,
        roles=view.roles,
        invite=invite,
        server_link=shop.guild_link(order.guild_id),
        refresh=REFRESH_SECONDS if view.state in ("pending", "joining") else None,
    )
