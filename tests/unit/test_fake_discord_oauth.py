"""The fake Discord's OAuth2 pieces, driven over HTTP like a browser and a web shop would."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes.discord import FakeDiscord, FakeGuild, Perm
from tests.fakes.discord.fixtures import fake_discord_fixture  # noqa: F401 - "fake_discord"
from tests.fakes.stripe import FakeClock

CALLBACK = "http://shop.example/oauth/callback"
BUYER = 424242424242424242
SCOPES = "identify guilds.join"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that, like a test inspecting a browser's hops, does not follow redirects."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def oauth(fake_discord: FakeDiscord) -> FakeDiscord:
    """The fake with the shop's callback registered and BUYER logged in to Discord."""
    fake_discord.clock = FakeClock()
    fake_discord.add_redirect_uri(CALLBACK)
    fake_discord.add_user(BUYER, "buyer")
    fake_discord.oauth_user = BUYER
    return fake_discord


def authorize_url(fake: FakeDiscord, **overrides: str) -> str:
    """The URL a shop's /login sends the browser to."""
    params = {
        "response_type": "code",
        "client_id": fake.client_id,
        "scope": SCOPES,
        "state": "st4te",
        "redirect_uri": CALLBACK,
        "prompt": "consent",
        **overrides,
    }
    return fake.oauth_authorize_url + "?" + urllib.parse.urlencode(params)


async def press(http: aiohttp.ClientSession, fake: FakeDiscord, button: str, url: str) -> str:
    """Open the authorize page, submit its form with `button`; return the redirect target."""
    async with http.get(url) as page:
        assert page.status == 200
        text = await page.text()
    assert f"id='{button}'" in text
    fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", text))
    form = {k: html.unescape(v) for k, v in fields.items()}
    form["decision"] = button
    async with http.post(fake.oauth_authorize_url, data=form, allow_redirects=False) as reply:
        assert reply.status == 302
        return reply.headers["Location"]


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a redirect."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def basic(fake: FakeDiscord) -> dict[str, str]:
    """HTTP Basic client authentication (client_id:client_secret)."""
    return {"Authorization": aiohttp.encode_basic_auth(fake.client_id, fake.client_secret)}


async def exchange(
    http: aiohttp.ClientSession, fake: FakeDiscord, code: str, **form: str
) -> tuple[int, dict[str, Any]]:
    """POST /oauth2/token with HTTP Basic client auth, as the web shop does."""
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, **form}
    async with http.post(f"{fake.api_base}/oauth2/token", data=body, headers=basic(fake)) as reply:
        return reply.status, await reply.json()


async def login(http: aiohttp.ClientSession, fake: FakeDiscord) -> str:
    """The whole approval: authorize, exchange; return the access token."""
    code = query_of(await press(http, fake, "authorize", authorize_url(fake)))["code"]
    status, token = await exchange(http, fake, code)
    assert status == 200, token
    return str(token["access_token"])


async def me(http: aiohttp.ClientSession, fake: FakeDiscord, auth: str) -> tuple[int, Any]:
    """GET /users/@me with an Authorization header."""
    async with http.get(f"{fake.api_base}/users/@me", headers={"Authorization": auth}) as reply:
        return reply.status, await reply.json()


async def add_member(
    http: aiohttp.ClientSession, fake: FakeDiscord, guild_id: int, user_id: int, **body: Any
) -> tuple[int, Any]:
    """PUT /guilds/{g}/members/{u} with the bot token, as the delivery job does."""
    url = f"{fake.api_base}/guilds/{guild_id}/members/{user_id}"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with http.put(url, json=body, headers=headers) as reply:
        return reply.status, (await reply.json() if reply.status != 204 else None)


async def test_oauth_login_redirects_with_code_and_state(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """Authorize → 302 to the callback with code and state; the code buys a Bearer token
    for identify + guilds.join once; /users/@me with it is the buyer, the bot path still works."""
    location = await press(http, oauth, "authorize", authorize_url(oauth))
    assert location.startswith(CALLBACK + "?")
    params = query_of(location)
    assert params["state"] == "st4te" and params["code"]
    status, token = await exchange(http, oauth, params["code"])
    assert status == 200
    assert token["token_type"] == "Bearer" and token["scope"] == SCOPES
    assert token["expires_in"] == 604800 and token["refresh_token"]
    status, user = await me(http, oauth, f"Bearer {token['access_token']}")
    assert status == 200 and user["id"] == str(BUYER) and user["username"] == "buyer"
    assert "email" not in user
    assert (await me(http, oauth, f"Bot {oauth.token}"))[1]["id"] == str(oauth.bot_user_id)
    replay = await exchange(http, oauth, params["code"])
    assert replay == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
    )
    record = next(r for r in oauth.requests if r.path == "/oauth2/token")
    assert record.headers["Authorization"] == "Basic ***"
    assert record.form is not None and record.form["code"] == params["code"]
    assert [r.status for r in oauth.authorize_requests] == [200, 302]


async def test_oauth_cancel_redirects_access_denied(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """Cancel sends the browser back with error=access_denied and the state, no code."""
    params = query_of(await press(http, oauth, "cancel", authorize_url(oauth)))
    assert params["error"] == "access_denied" and params["state"] == "st4te"
    assert params["error_description"] and "code" not in params
    assert oauth.oauth_codes == {}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"redirect_uri": "http://evil.example/cb"}, "Invalid OAuth2 redirect_uri"),
        ({"redirect_uri": CALLBACK + "/"}, "Invalid OAuth2 redirect_uri"),
        ({"client_id": "1"}, "Unknown Application"),
        ({"scope": "identify admin"}, "Invalid scope"),
        ({"response_type": "token"}, "Invalid response_type"),
    ],
)
async def test_authorize_refuses_bad_requests(
    oauth: FakeDiscord, http: aiohttp.ClientSession, override: dict[str, str], message: str
) -> None:
    """Like discord.com, a bad authorize request shows an error page and never redirects."""
    async with http.get(authorize_url(oauth, **override), allow_redirects=False) as page:
        assert page.status == 400 and message in await page.text()
    assert oauth.oauth_codes == {}


async def test_authorize_page_without_login_offers_no_button(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """With nobody logged in to Discord there is nothing to approve."""
    oauth.oauth_user = None
    async with http.get(authorize_url(oauth)) as page:
        text = await page.text()
    assert "Nobody is logged in" in text and "id='authorize'" not in text


async def test_prompt_none_skips_the_screen_once_approved(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """prompt=none redirects at once for scopes the user already approved."""
    await login(http, oauth)
    url = authorize_url(oauth, prompt="none")
    async with http.get(url, allow_redirects=False) as reply:
        assert reply.status == 302 and "code" in query_of(reply.headers["Location"])


async def test_token_errors_match_discord(oauth: FakeDiscord, http: aiohttp.ClientSession) -> None:
    """Bad client → 401 invalid_client; wrong redirect_uri or expired code → 400 invalid_grant;
    client auth may also come as form fields."""
    code = query_of(await press(http, oauth, "authorize", authorize_url(oauth)))["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    bad = {"Authorization": aiohttp.encode_basic_auth(oauth.client_id, "wrong")}
    async with http.post(f"{oauth.api_base}/oauth2/token", data=body, headers=bad) as reply:
        assert (reply.status, await reply.json()) == (401, {"error": "invalid_client"})
    status, error = await exchange(http, oauth, code, redirect_uri=CALLBACK + "?x=1")
    assert (status, error["error"]) == (400, "invalid_grant")
    assert error["error_description"] == 'Invalid "redirect_uri" in request.'
    form = {**body, "client_id": oauth.client_id, "client_secret": oauth.client_secret}
    async with http.post(f"{oauth.api_base}/oauth2/token", data=form) as reply:
        assert reply.status == 200
    record = [r for r in oauth.requests if r.path == "/oauth2/token"][-1]
    assert record.form is not None and record.form["client_secret"] == "***"
    late = query_of(await press(http, oauth, "authorize", authorize_url(oauth)))["code"]
    assert isinstance(oauth.clock, FakeClock)
    oauth.clock.advance(601)
    assert (await exchange(http, oauth, late))[0] == 400


async def test_bearer_tokens_die_when_invalid_expired_or_revoked(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """An unknown, revoked or expired Bearer token gets 401; Bearer is no bot token."""
    token = await login(http, oauth)
    assert (await me(http, oauth, "Bearer nope"))[0] == 401
    assert (await me(http, oauth, f"Bearer {token}"))[0] == 200
    guilds = f"{oauth.api_base}/users/@me/guilds"
    async with http.get(guilds, headers={"Authorization": f"Bearer {token}"}) as reply:
        assert reply.status == 401
    oauth.revoke_oauth(BUYER)
    assert (await me(http, oauth, f"Bearer {token}"))[0] == 401
    fresh = await login(http, oauth)
    assert isinstance(oauth.clock, FakeClock)
    oauth.clock.advance(oauth.oauth_token_ttl)
    assert (await me(http, oauth, f"Bearer {fresh}"))[0] == 401


async def test_refresh_and_revoke(oauth: FakeDiscord, http: aiohttp.ClientSession) -> None:
    """refresh_token gives a new pair (the old one dies); /token/revoke ends a token."""
    code = query_of(await press(http, oauth, "authorize", authorize_url(oauth)))["code"]
    first = (await exchange(http, oauth, code))[1]
    auth = basic(oauth)
    body = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    async with http.post(f"{oauth.api_base}/oauth2/token", data=body, headers=auth) as reply:
        second = await reply.json()
    assert second["access_token"] != first["access_token"]
    assert (await me(http, oauth, f"Bearer {first['access_token']}"))[0] == 401
    revoke = {"token": second["access_token"], "token_type_hint": "access_token"}
    async with http.post(f"{oauth.api_base}/oauth2/token/revoke", data=revoke, headers=auth) as r:
        assert (r.status, await r.json()) == (200, {})
    assert (await me(http, oauth, f"Bearer {second['access_token']}"))[0] == 401


async def test_add_member_with_oauth_token(oauth: FakeDiscord, http: aiohttp.ClientSession) -> None:
    """201 with the member and the roles; again → 204 and roles ignored; recorded in joins."""
    guild = oauth.add_guild(name="Shop")
    vip = oauth.add_role(guild.id, "VIP", position=2)
    extra = oauth.add_role(guild.id, "Extra", position=3)
    token = await login(http, oauth)
    status, member = await add_member(
        http, oauth, guild.id, BUYER, access_token=token, roles=[str(vip.id)]
    )
    assert status == 201 and member["user"]["id"] == str(BUYER)
    assert member["roles"] == [str(vip.id)] and member["pending"] is False
    assert oauth.member_roles(guild.id, BUYER) == {vip.id}
    again = await add_member(
        http, oauth, guild.id, BUYER, access_token=token, roles=[str(extra.id)]
    )
    assert again == (204, None) and oauth.member_roles(guild.id, BUYER) == {vip.id}
    assert [(j.user_id, j.roles, j.status) for j in oauth.joins] == [
        (BUYER, (vip.id,), 201),
        (BUYER, (), 204),
    ]


async def test_add_member_under_screening_is_pending(
    oauth: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """With Membership Screening on, a member added without roles is pending."""
    guild = oauth.add_guild(name="Gated")
    guild.screening = True
    status, member = await add_member(
        http, oauth, guild.id, BUYER, access_token=await login(http, oauth)
    )
    assert status == 201 and member["pending"] is True


async def test_add_member_refusals(oauth: FakeDiscord, http: aiohttp.ClientSession) -> None:
    """Someone else's, unknown or guilds.join-less token → 50025; banned → 40007; no
    CREATE_INSTANT_INVITE → 50013; roles without MANAGE_ROLES → 50013. Nothing is added."""
    guild: FakeGuild = oauth.add_guild(name="Shop")
    vip = oauth.add_role(guild.id, "VIP", position=2)
    token = await login(http, oauth)
    other = oauth.add_user(555555555555555555, "other").id

    async def refused(user: int, **body: Any) -> tuple[int, int]:
        status, error = await add_member(http, oauth, guild.id, user, **body)
        return status, error["code"]

    assert await refused(other, access_token=token) == (403, 50025)
    assert await refused(BUYER, access_token="forged") == (403, 50025)
    identify_only = await login_with_scope(http, oauth, "identify")
    assert await refused(BUYER, access_token=identify_only) == (403, 50025)
    guild.bans[BUYER] = "spam"
    assert await refused(BUYER, access_token=token) == (403, 40007)
    del guild.bans[BUYER]
    oauth.set_bot_permissions(guild.id, 0)
    oauth.update_role(guild.id, guild.id, permissions=0)  # @everyone may invite by default
    assert await refused(BUYER, access_token=token) == (403, 50013)
    oauth.set_bot_permissions(guild.id, Perm.CREATE_INSTANT_INVITE)
    assert await refused(BUYER, access_token=token, roles=[str(vip.id)]) == (403, 50013)
    assert oauth.member(guild.id, BUYER) is None
    assert all(j.status == 403 for j in oauth.joins)


async def login_with_scope(http: aiohttp.ClientSession, fake: FakeDiscord, scope: str) -> str:
    """Authorize and exchange with a different scope list."""
    location = await press(http, fake, "authorize", authorize_url(fake, scope=scope))
    status, token = await exchange(http, fake, query_of(location)["code"])
    assert status == 200 and token["scope"] == scope
    return str(token["access_token"])
