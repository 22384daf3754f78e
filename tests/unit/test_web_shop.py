"""The web shop (issue 11) through aiohttp's test client: pages, CSRF, Discord login against
the fake Discord's OAuth2, checkouts with and without a login, and the pages after Stripe."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.errors import NotFound
from bot.membership import UNKNOWN_CODE
from bot.oauth import DiscordOAuth
from bot.web import Metrics, WebDeps, make_app
from bot.web_pages import local_path
from bot.web_shop import WebShop
from tests.fakes.discord import FakeDiscord
from tests.unit.world import BUYER, GUILD, OTHER, ROLE, World, add_product

PUBLIC = "https://shop.test"
CALLBACK = f"{PUBLIC}/oauth/callback"
WEB_USER = 7007


@dataclass
class ServerSide:
    """What the web shop asks Discord, answered like Discord would (a port double)."""

    banned: set[int] = field(default_factory=set)
    invite: str | None = "https://discord.gg/shopvip"

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        return user_id in self.banned

    async def invite_url(self, guild_id: int, channel_id: int | None) -> str | None:
        return self.invite

    def role_name(self, guild_id: int, role_id: int) -> str | None:
        return "VIP" if role_id == ROLE else None


@dataclass
class Browser:
    client: TestClient
    world: World
    discord: FakeDiscord
    side: ServerSide

    async def get(self, path: str, **params: str) -> tuple[int, str]:
        async with self.client.get(path, params=params, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def csrf(self, path: str) -> str:
        status, page = await self.get(path)
        assert status == 200, page
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    async def buy(self, product_id: int, **form: str) -> aiohttp.ClientResponse:
        path = f"/shop/{GUILD}/{product_id}"
        form.setdefault("csrf_token", await self.csrf(path))
        resp = await self.client.post(f"{path}/buy", data=form, allow_redirects=False)
        await resp.read()
        return resp

    async def login(self, user_id: int = WEB_USER, *, approve: bool = True) -> str:
        """/login → the fake's authorize page → Authorize/Cancel → back at /oauth/callback."""
        self.discord.oauth_user = user_id
        async with self.client.get("/login", params={"next": "/"}, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            authorize = r.headers["Location"]
        async with aiohttp.ClientSession() as discord_browser:
            async with discord_browser.get(authorize) as page:
                html = await page.text()
            fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", html))
            fields["decision"] = "authorize" if approve else "cancel"
            action = f"{self.discord.base_url}/oauth2/authorize"
            async with discord_browser.post(action, data=fields, allow_redirects=False) as back:
                callback = back.headers["Location"]
        assert callback.startswith(CALLBACK)
        return callback

    async def follow(self, callback: str) -> tuple[int, str, str]:
        query = urlsplit(callback).query
        async with self.client.get(f"/oauth/callback?{query}", allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()

    def count(self, table: str) -> int:
        return int(self.world.rows(f"SELECT COUNT(*) FROM {table}")[0][0])


async def open_browser(world: World, fake: FakeDiscord, *, login: bool) -> AsyncIterator[Browser]:
    side = ServerSide()
    fake.add_redirect_uri(CALLBACK)
    oauth = (
        DiscordOAuth(
            api_base=fake.api_base,
            authorize_url=fake.oauth_authorize_url,
            client_id=lambda: fake.application_id,
            client_secret=fake.client_secret,
            redirect_uri=CALLBACK,
        )
        if login
        else None
    )
    fronts = [(GUILD, "Shop <&> Co")]
    web_shop = WebShop(
        world.store,
        world.shop,
        side,
        world.vault,
        lambda: fronts,
        lambda guild_id: f"https://discord.com/channels/{guild_id}",
    )
    deps = WebDeps(
        store=world.store,
        inbox=world.inbox,
        metrics=Metrics(),
        gateway_connected=lambda: True,
        guild_link=lambda guild_id: f"https://discord.com/channels/{guild_id}",
        storefronts=lambda: fronts,
        web_shop=web_shop,
        vault=world.vault,
        oauth=oauth,
        secure_cookies=False,  # the test client speaks plain http
        clock=world.clock,
    )
    client = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    try:
        yield Browser(client, world, fake, side)
    finally:
        await client.close()


@pytest_asyncio.fixture
async def browser(world: World, fake_discord: FakeDiscord) -> AsyncIterator[Browser]:
    """The web shop with "Log in with Discord" (a client secret is set)."""
    async for opened in open_browser(world, fake_discord, login=True):
        yield opened


@pytest_asyncio.fixture
async def anonymous(world: World, fake_discord: FakeDiscord) -> AsyncIterator[Browser]:
    """The web shop without a client secret: buyers get claim codes."""
    async for opened in open_browser(world, fake_discord, login=False):
        yield opened


async def pay(world: World, session_id: str) -> None:
    world.stripe.complete_checkout(session_id)
    await world.flush()


def session_of(resp: aiohttp.ClientResponse) -> str:
    location = resp.headers["Location"]
    assert location.startswith("https://checkout.stripe.com/"), location
    return location.rstrip("/").split("/")[-1]


async def test_web_shop_pages_list_products_escaped(anonymous: Browser) -> None:
    """GET / shows the guild's products (names escaped), the product page its price, role
    and a CSRF-protected buy form; the CSS is ours and the page has a lang attribute."""
    product_id = await add_product(anonymous.world, "<b>VIP</b>", description="Gold & more")
    status, page = await anonymous.get("/")
    assert status == 200
    assert '<html lang="en">' in page and "Shop &lt;&amp;&gt; Co" in page
    assert "&lt;b&gt;VIP&lt;/b&gt;" in page and "<b>VIP</b>" not in page
    assert "4.99 USD" in page and f"/shop/{GUILD}/{product_id}" in page
    assert "<script src" not in page and "https://fonts" not in page
    status, page = await anonymous.get(f"/shop/{GUILD}/{product_id}")
    assert status == 200 and "@VIP" in page and 'name="csrf_token"' in page
    status, css = await anonymous.get("/static/shop.css")
    assert status == 200 and "prefers-color-scheme: dark" in css


async def test_web_shop_unknown_or_inactive_is_a_clear_4xx(anonymous: Browser) -> None:
    """Unknown guild or product, a malformed id and an inactive product are HTML 4xx pages;
    buying any of them creates no order and no Checkout Session."""
    product_id = await add_product(anonymous.world, "VIP")
    await anonymous.world.shop.edit_product(GUILD, 1, str(product_id), active=False)
    for path, status, words in [
        (f"/shop/{GUILD + 1}", 404, "no shop here"),
        (f"/shop/{GUILD}/999", 404, "no such product"),
        (f"/shop/{GUILD}/12x", 404, "nothing at this address"),
        (f"/shop/{GUILD}/{product_id}", 409, "not for sale"),
    ]:
        got, page = await anonymous.get(path)
        assert (got, words in page) == (status, True), (path, page)
        assert "Back to the shop" in page
    gold = await add_product(anonymous.world, "Gold")
    token = await anonymous.csrf(f"/shop/{GUILD}/{gold}")
    for path in (f"/shop/{GUILD}/{product_id}/buy", f"/shop/{GUILD}/999/buy"):
        async with anonymous.client.post(path, data={"csrf_token": token}) as resp:
            assert resp.status in (404, 409)
    assert anonymous.count("orders") == 0 and not anonymous.world.stripe.sessions


async def test_web_buy_refuses_a_forged_or_missing_csrf_token(anonymous: Browser) -> None:
    """POST …/buy without the session's CSRF token (none, a forged one, or a token with no
    session cookie) is a 403 page and creates nothing; with it, a 303 to Stripe Checkout."""
    product_id = await add_product(anonymous.world, "VIP")
    path = f"/shop/{GUILD}/{product_id}/buy"
    await anonymous.csrf(f"/shop/{GUILD}/{product_id}")  # the browser has a session
    for form in ({}, {"csrf_token": "forged"}):
        async with anonymous.client.post(path, data=form, allow_redirects=False) as resp:
            assert resp.status == 403 and "nothing was done" in await resp.text()
    token = await anonymous.csrf(f"/shop/{GUILD}/{product_id}")
    async with aiohttp.ClientSession() as stranger:  # the token alone, without the cookie
        url = str(anonymous.client.make_url(path))
        async with stranger.post(url, data={"csrf_token": token}, allow_redirects=False) as r:
            assert r.status == 403
    assert anonymous.count("orders") == 0 and not anonymous.world.stripe.sessions
    resp = await anonymous.buy(product_id, csrf_token=token)
    assert resp.status == 303
    assert session_of(resp) in anonymous.world.stripe.sessions


async def test_session_cookie_is_httponly_lax_and_secure_on_https(
    world: World, fake_discord: FakeDiscord
) -> None:
    """The session cookie is HttpOnly and SameSite=Lax, and Secure when public_url is https."""
    await add_product(world, "VIP")
    async for opened in open_browser(world, fake_discord, login=False):
        async with opened.client.get(f"/shop/{GUILD}") as resp:
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    deps_secure = WebDeps(
        store=world.store,
        inbox=world.inbox,
        metrics=Metrics(),
        gateway_connected=lambda: True,
        guild_link=str,
        web_shop=WebShop(world.store, world.shop, ServerSide(), world.vault, list, str),
        vault=world.vault,
        secure_cookies=True,
        clock=world.clock,
    )
    client = TestClient(TestServer(make_app(deps_secure)))
    await client.start_server()
    try:
        async with client.get("/") as resp:
            assert "Secure" in resp.headers["Set-Cookie"]
    finally:
        await client.close()


def test_login_next_must_be_a_local_path() -> None:
    """`next=` accepts paths of this site only: no scheme, host, `//` or backslash tricks."""
    assert local_path("/shop/1/2?x=1") == "/shop/1/2?x=1"
    for bad in ("//evil.test", "https://evil.test/", "/\\evil.test", "evil", "/\t/evil.test", ""):
        assert local_path(bad) is None, bad


async def test_login_refuses_an_open_redirect(browser: Browser) -> None:
    """GET /login?next=<another site> is a 400 page and starts no login; a local next
    redirects to Discord's authorize URL with our client id, scopes, state and redirect."""
    for bad in ("https://evil.test/", "//evil.test", "/\\evil.test"):
        status, page = await browser.get("/login", next=bad)
        assert status == 400 and "pointed somewhere else" in page
    async with browser.client.get(
        "/login", params={"next": f"/shop/{GUILD}"}, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        target = urlsplit(resp.headers["Location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == browser.discord.oauth_authorize_url
    assert query["client_id"] == [str(browser.discord.application_id)]
    assert query["scope"] == ["identify guilds.join"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [CALLBACK] and len(query["state"][0]) >= 32


async def test_oauth_callback_refuses_state_mismatch_and_replayed_code(browser: Browser) -> None:
    """A callback whose state is not this session's is a 400 page (nobody logged in); a
    good one logs the buyer in; the same code again (Discord's invalid_grant) is a 400."""
    callback = await browser.login()
    forged = callback.replace("state=", "state=x")
    status, _, page = await browser.follow(forged)
    assert status == 400 and "did not start here" in page
    callback = await browser.login()
    status, location, _ = await browser.follow(callback)
    assert (status, location) == (302, "/")
    status, page = await browser.get("/")
    assert "Logged in as" in page
    # The code once more, with a fresh state of this session: Discord refuses it.
    async with browser.client.get("/login", params={"next": "/"}, allow_redirects=False) as r:
        state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    status, _, page = await browser.follow(f"{CALLBACK}?code={code}&state={state}")
    assert status == 400 and "already used or has expired" in page
    assert browser.count("orders") == 0


async def test_logged_in_web_buyer_is_added_to_the_server_after_paying(browser: Browser) -> None:
    """Log in with Discord → buy → the order is the user's (source web) and their token is
    kept only sealed; once paid, one add_member job (with the product's role) runs first,
    the token is deleted, and the success page says they were added."""
    world = browser.world
    world.discord.absent.add(WEB_USER)
    product_id = await add_product(world, "VIP")
    await browser.follow(await browser.login())
    resp = await browser.buy(product_id)
    assert resp.status == 303
    session_id = session_of(resp)
    [(buyer, recipient, source)] = world.rows("SELECT buyer_id, recipient_id, source FROM orders")
    assert (buyer, recipient, source) == (WEB_USER, WEB_USER, "web")
    [(sealed,)] = world.rows("SELECT ciphertext FROM join_tokens")
    tokens = [g.access_token for g in browser.discord.oauth_grants.values()]
    assert tokens and all(token not in sealed for token in tokens)
    status, page = await browser.get("/checkout/success", session_id=session_id)
    assert status == 200 and "Confirming your payment" in page and 'http-equiv="refresh"' in page
    await pay(world, session_id)
    kinds = [kind for (kind,) in world.rows("SELECT kind FROM delivery_jobs ORDER BY id")]
    assert kinds[:2] == ["add_member", "grant_role"]
    await world.run_jobs()
    assert ("join", WEB_USER, 1) in world.discord.calls
    assert ROLE in world.discord.roles[WEB_USER]
    assert browser.count("join_tokens") == 0
    status, page = await browser.get("/checkout/success", session_id=session_id)
    assert status == 200 and "You were added to" in page and "@VIP" in page
    assert 'http-equiv="refresh"' not in page


async def test_web_buyer_banned_or_charged_back_is_refused(browser: Browser) -> None:
    """A logged-in buyer banned from the server, or whose access a chargeback revoked, gets
    a 403 page before any checkout: no order, no Checkout Session."""
    world = browser.world
    product_id = await add_product(world, "VIP")
    await browser.follow(await browser.login())
    browser.side.banned.add(WEB_USER)
    resp = await browser.buy(product_id)
    assert resp.status == 403 and "banned from" in await resp.text()
    browser.side.banned.clear()
    async with world.store.transaction() as tx:
        order = await tx.orders.create(
            guild_id=GUILD, buyer_id=WEB_USER, recipient_id=WEB_USER, product_id=product_id,
            amount=499, currency="usd",
        )  # fmt: skip
        entitlement = await tx.entitlements.create(
            guild_id=GUILD, user_id=WEB_USER, product_id=product_id, order_id=order.id,
            ends_at=None,
        )  # fmt: skip
        await tx.entitlements.set_end(
            entitlement.id, "revoked", "chargeback", expected=("active", None)
        )
    resp = await browser.buy(product_id)
    assert resp.status == 403 and "chargeback" in await resp.text()
    assert browser.count("orders") == 1 and not world.stripe.sessions


async def test_declined_login_buys_with_a_claim_code(browser: Browser) -> None:
    """A buyer who presses Cancel at Discord goes back to the shop and can buy without a
    login: that order has no buyer and no recipient, and no token is kept."""
    world = browser.world
    product_id = await add_product(world, "VIP")
    status, location, _ = await browser.follow(await browser.login(approve=False))
    assert (status, location) == (302, "/")
    resp = await browser.buy(product_id)
    assert resp.status == 303
    assert world.rows("SELECT buyer_id, recipient_id FROM orders") == [(0, None)]
    assert browser.count("join_tokens") == 0


async def test_anonymous_web_order_is_claimed_once(anonymous: Browser) -> None:
    """Without a client secret: buy → pay → the success page shows the claim code, how to
    use it, a copy button and the invite; /claim attaches it to the first member who types
    it (who also gets the receipt); a second claim and a wrong code get one same answer."""
    world = anonymous.world
    product_id = await add_product(world, "VIP")
    resp = await anonymous.buy(product_id)
    session_id = session_of(resp)
    await pay(world, session_id)
    status, page = await anonymous.get("/checkout/success", session_id=session_id)
    [(code,)] = world.rows("SELECT claim_code FROM orders")
    assert status == 200 and code in page and f"/claim {code}" in page
    assert 'id="copy"' in page and "https://discord.gg/shopvip" in page
    assert (await world.members.claim(GUILD, OTHER, code)).startswith("Order #")
    assert world.rows("SELECT buyer_id, recipient_id FROM orders") == [(OTHER, OTHER)]
    await world.run_jobs()
    assert ROLE in world.discord.roles[OTHER]
    assert [user for user, _ in world.discord.dms] == [OTHER]  # the receipt, to the claimer
    with pytest.raises(NotFound) as again:
        await world.members.claim(GUILD, BUYER, code)
    with pytest.raises(NotFound) as wrong:
        await world.members.claim(GUILD, BUYER, "ABCD-EFGH-JKLM-NPQR")
    assert UNKNOWN_CODE in again.value.user_message and UNKNOWN_CODE in wrong.value.user_message
    assert (
        again.value.user_message.split(" Check")[0] == wrong.value.user_message.split(" Check")[0]
    )


async def test_cancel_page_expires_the_session_and_frees_the_slot(anonymous: Browser) -> None:
    """The cancel link expires the Checkout Session at Stripe and the order (stock back);
    a wrong token is a 404 page that changes nothing; a second visit changes nothing."""
    world = anonymous.world
    product_id = await add_product(world, "VIP", stock=1)
    session_id = session_of(await anonymous.buy(product_id))
    cancel_url = world.stripe.sessions[session_id]["cancel_url"]
    query = parse_qs(urlsplit(cancel_url).query)
    status, page = await anonymous.get("/checkout/cancel", order=query["order"][0], token="nope")
    assert status == 404
    assert world.stripe.sessions[session_id]["status"] == "open"
    assert await world.shop.units_left(product_id) == 0
    for _ in range(2):
        status, page = await anonymous.get(
            "/checkout/cancel", **{k: v[0] for k, v in query.items()}
        )
        assert status == 200 and "Nothing was charged" in page and "VIP" in page
        assert "4.99 USD" in page and f"/shop/{GUILD}" in page
    assert world.stripe.sessions[session_id]["status"] == "expired"
    assert world.rows("SELECT status FROM orders") == [("expired",)]
    assert await world.shop.units_left(product_id) == 1


async def test_success_page_for_an_unknown_session_never_dead_ends(anonymous: Browser) -> None:
    """An unknown session id is a 404 page that still links back to the shop."""
    status, page = await anonymous.get("/checkout/success", session_id="cs_nope")
    assert status == 404 and "could not find that order" in page and 'href="/"' in page


async def test_buy_without_login_choice_sends_to_discord_login(browser: Browser) -> None:
    """With login on, a buyer who is not logged in and did not choose a claim code is sent
    to /login (back to the product afterwards); nothing is created."""
    product_id = await add_product(browser.world, "VIP")
    resp = await browser.buy(product_id)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/login?next=/shop/{GUILD}/{product_id}"
    assert browser.count("orders") == 0


def test_oauth_tokens_are_scrubbed_from_logs() -> None:
    """An access token handed to `redact` never appears in a log line, message or traceback."""
    import logging

    from bot.log import RedactingFormatter, RedactSecrets, redact

    token = "tok_" + "z" * 26
    redact(token)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", (token,), None)
    assert RedactSecrets([]).filter(record) and token not in record.getMessage()
    text = RedactingFormatter(logging.Formatter("%(message)s"), []).format(
        logging.LogRecord("x", logging.INFO, __file__, 1, f"raw {token}", None, None)
    )
    assert token not in text and "***" in text
