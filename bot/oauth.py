"""Discord OAuth2 for the web shop: the authorize URL, the code exchange, the logged-in user.

FACTS "Discord OAuth2": the browser goes to `discord.oauth_authorize_url` with
`response_type=code`, our client id, scopes `identify guilds.join`, an unguessable `state`
and the redirect URI registered in the Developer Portal; the code comes back to
`/oauth/callback` and is exchanged at `{api_base}/oauth2/token` (form body, HTTP Basic
client_id:secret); `GET {api_base}/users/@me` with the Bearer token names the user.
Access tokens are handed to bot/log.py's redaction as soon as they are seen.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp

from bot.log import redact

log = logging.getLogger(__name__)

SCOPES = "identify guilds.join"


class OAuthRefused(Exception):
    """Discord refused the code (used twice, expired, or not ours): the user must log in
    again. The message is for them."""


class OAuthUnavailable(Exception):
    """Discord could not be reached or answered with an error; nothing changed."""


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: str
    expires_in: int
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class DiscordUser:
    id: int
    name: str


class DiscordOAuth:
    """The OAuth2 client of one application."""

    def __init__(
        self,
        *,
        api_base: str,
        authorize_url: str,
        client_id: Callable[[], int | None],
        client_secret: str,
        redirect_uri: str,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.authorize_base = authorize_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._http: aiohttp.ClientSession | None = None

    @property
    def client_id(self) -> int:
        found = self._client_id()
        if not found:
            raise OAuthUnavailable("the application id is not known yet")
        return found

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": str(self.client_id),
                "scope": SCOPES,
                "state": state,
                "redirect_uri": self.redirect_uri,
                "prompt": "consent",
            },
            quote_via=quote,  # spaces as %20, as Discord's own authorize links have them
        )
        sep = "&" if "?" in self.authorize_base else "?"
        return f"{self.authorize_base}{sep}{query}"

    async def exchange(self, code: str) -> Grant:
        """The code → an access token (raises OAuthRefused for a bad or used code)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        # HTTP Basic client authentication (RFC 6749 §2.3.1); aiohttp.BasicAuth is deprecated.
        pair = f"{self.client_id}:{self._client_secret}".encode()
        auth = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        try:
            async with self._session().post(
                f"{self.api_base}/oauth2/token", data=form, headers=auth
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OAuthUnavailable(f"token exchange failed: {type(exc).__name__}") from None
        if status == 400 and isinstance(body, dict) and body.get("error") == "invalid_grant":
            raise OAuthRefused(
                "That Discord login was already used or has expired. Please log in again."
            )
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            log.warning("discord refused the token exchange: %s %s", status, error)
            if status in (400, 401):
                raise OAuthRefused(
                    "Discord did not accept this login (the shop's login setup may be wrong); "
                    "please try again or tell the shop's admin."
                )
            raise OAuthUnavailable(f"token exchange answered {status}")
        token = str(body["access_token"])
        redact(token)
        if body.get("refresh_token"):
            redact(str(body["refresh_token"]))
        return Grant(
            access_token=token,
            expires_in=int(body.get("expires_in") or 0),
            scopes=frozenset(str(body.get("scope") or "").split()),
        )

    async def user(self, grant: Grant) -> DiscordUser:
        """GET /users/@me with the user's token."""
        headers = {"Authorization": f"Bearer {grant.access_token}"}
        try:
            async with self._session().get(f"{self.api_base}/users/@me", headers=headers) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OAuthUnavailable(f"users/@me failed: {type(exc).__name__}") from None
        if status != 200 or not isinstance(body, dict) or "id" not in body:
            raise OAuthUnavailable(f"users/@me answered {status}")
        name = body.get("global_name") or body.get("username") or "Discord user"
        return DiscordUser(id=int(body["id"]), name=str(name))

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
