"""FakeDiscord: the aiohttp app (REST + gateway websocket) and the test-facing API.

OAuth2 for a web shop ("Log in with Discord", add the buyer to a guild) is described in
`oauth.py`: `fake.add_redirect_uri(url)`, `fake.oauth_user = user_id`,
`fake.oauth_authorize_url`, `fake.client_secret`, `fake.clock`, `fake.joins`, and
`guild.screening = True` for Membership Screening.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import responses as R
from .channels import ChannelRoutes
from .entitlements import EntitlementMixin, EntitlementRoutes
from .gateway import Gateway
from .interactions import FakeInteraction, InteractionMixin
from .middleware import API_PREFIX, Pipeline
from .models import FakeChannel, FakeGuild, FakeUser, snowflake
from .oauth import JoinOp, OAuthCode, OAuthGrant, OAuthRoutes
from .openapi import Violation, get_validator
from .ratelimit import Fault, FaultInjector, Matcher, RateLimiter
from .responses import RequestRecord, RoleOp
from .rest import RestRoutes
from .state import StateMixin
from .webhooks import InteractionRoutes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None for anything that is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class FakeDiscord(StateMixin, InteractionMixin, EntitlementMixin):
    """A local Discord (REST under /api/v10 + gateway websocket) for the real discord.py client."""

    def __init__(
        self,
        token: str = "fake-token",
        *,
        heartbeat_interval_ms: int = 41250,
        validate: bool = True,
        host: str = "127.0.0.1",
        client_secret: str = "fake-client-secret",
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create ids, the bot user and empty state; nothing listens until start().

        `clock` (unix seconds, default `time.time`) ages OAuth2 codes and tokens.
        """
        self.token = token
        self.client_secret = client_secret
        self.clock: Callable[[], float] = clock or time.time
        self.host = host
        self.port = 0
        self.application_id = snowflake()
        self.bot_user = FakeUser(snowflake(), "shopbot", bot=True)
        self.owner_user = FakeUser(snowflake(), "app-owner")
        self.users = {self.bot_user.id: self.bot_user, self.owner_user.id: self.owner_user}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.dm_channels: dict[int, FakeChannel] = {}
        self.dm_closed: set[int] = set()
        self.messages: dict[int, dict[str, Any]] = {}
        self.attachments: dict[int, tuple[str, bytes, str]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.synced_commands: dict[int | str, list[dict[str, Any]]] = {}
        self.command_syncs: list[tuple[int | str, list[dict[str, Any]]]] = []
        self.requests: list[RequestRecord] = []
        self.violations: list[Violation] = []
        self.unhandled: list[RequestRecord] = []
        self.role_ops: list[RoleOp] = []
        self.dms: list[tuple[int, dict[str, Any]]] = []
        self.channel_messages: list[tuple[int, dict[str, Any]]] = []
        self.message_edits: list[tuple[int, dict[str, Any]]] = []  # (channel, message after)
        self.deleted_messages: list[int] = []
        self.invites: list[dict[str, Any]] = []
        self.kicks: list[tuple[int, int, str | None]] = []
        #: Monetization (see entitlements.py): SKUs, entitlements, accepted consumes.
        self.skus: dict[int, dict[str, Any]] = {}
        self.entitlements: dict[int, dict[str, Any]] = {}
        self.consumes: list[int] = []
        #: OAuth2 (see oauth.py): the Developer Portal's Redirects list, the browser's
        #: logged-in user, issued codes, live grants by access token, and what users approved.
        self.redirect_uris: list[str] = []
        self.oauth_user: int | None = None
        self.oauth_code_ttl = 600.0
        self.oauth_token_ttl = 604800
        self.oauth_codes: dict[str, OAuthCode] = {}
        self.oauth_grants: dict[str, OAuthGrant] = {}
        self.oauth_authorized: dict[tuple[int, str], set[str]] = {}
        self.authorize_requests: list[RequestRecord] = []
        self.joins: list[JoinOp] = []
        self.invalid_request_count = 0
        self.members_intent_enabled = True
        self.interaction_response_timeout: float | None = 3.0
        self.validate = validate
        self.faults = FaultInjector()
        self.ratelimits = RateLimiter()
        self.gateway = Gateway(self, heartbeat_interval_ms)
        self._validator = get_validator() if validate else None
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> FakeDiscord:
        """Bind 127.0.0.1 on a free port and serve."""
        # Bodies past aiohttp's 1 MiB default reach the handlers, which answer an oversized
        # file the way Discord does (413, code 40005) instead of aiohttp's plain-text 413.
        app = web.Application(
            middlewares=[Pipeline(self).middleware],
            client_max_size=2 * R.ATTACHMENT_SIZE_LIMIT + 1024 * 1024,
        )
        oauth = OAuthRoutes(self)
        for route in [
            *oauth.api_routes(),
            *RestRoutes(self).routes(),
            *ChannelRoutes(self).routes(),
            *InteractionRoutes(self).routes(),
            *EntitlementRoutes(self).routes(),
        ]:
            app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
        app.router.add_routes(oauth.browser_routes())
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def add_listener(self) -> str:
        """Serve the same Discord on one more free port; its REST base (`api_base`).

        Several bot processes given one listener each share one Discord, and every
        RequestRecord's `port` tells which process sent it (real Discord is one host;
        this is only how a test tells its own processes apart)."""
        assert self._runner is not None, "start() first"
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{self.host}:{port}{API_PREFIX}"

    async def stop(self) -> None:
        """Close sockets and the server."""
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        """Start the fake."""
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        """Stop the fake."""
        await self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """REST base for `discord.http.Route.BASE`."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """Websocket URL for `DiscordWebSocket.DEFAULT_GATEWAY` (also resume_gateway_url)."""
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def oauth_authorize_url(self) -> str:
        """The browser-facing authorize page (Discord's `https://discord.com/oauth2/authorize`)."""
        return self.base_url + "/oauth2/authorize"

    @property
    def client_id(self) -> str:
        """The OAuth2 client id (the application id)."""
        return str(self.application_id)

    def add_redirect_uri(self, uri: str) -> None:
        """Register a redirect URI for the app, as in the Developer Portal (exact match)."""
        if uri not in self.redirect_uris:
            self.redirect_uris.append(uri)

    def grant_oauth(
        self, user_id: int, scopes: tuple[str, ...] = ("identify", "guilds.join")
    ) -> OAuthGrant:
        """The user approved the app and the shop exchanged the code (no browser needed):
        a live access + refresh token for `user_id` (created if unknown)."""
        user = self.add_user(user_id)
        grant = OAuthGrant(
            access_token=secrets.token_urlsafe(22)[:30],
            refresh_token=secrets.token_urlsafe(22)[:30],
            user_id=user.id,
            scopes=tuple(scopes),
            expires_at=self.clock() + self.oauth_token_ttl,
            client_id=self.client_id,
        )
        self.oauth_grants[grant.access_token] = grant
        return grant

    def revoke_oauth(self, user_id: int) -> None:
        """The user de-authorizes the app: all their tokens stop working, consent is forgotten."""
        for grant in self.oauth_grants.values():
            if grant.user_id == int(user_id):
                grant.revoked = True
        self.oauth_authorized = {
            k: v for k, v in self.oauth_authorized.items() if k[0] != int(user_id)
        }

    @property
    def bot_user_id(self) -> int:
        """The bot's user id."""
        return self.bot_user.id

    # ------------------------------------------------------------- gateway
    @property
    def connected(self) -> bool:
        """Whether a client websocket is live."""
        return self.gateway.connected

    def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send a gateway event (buffered for RESUME while the socket is down); returns seq."""
        return self.gateway.dispatch(event, data)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until a client IDENTIFIED and received READY plus every GUILD_CREATE."""
        await self.gateway.wait_ready(timeout)

    async def drop_connection(self, shard: int | None = None) -> None:
        """Abort the socket of `shard` (None: every one), no close frame: RESUME follows."""
        await self.gateway.drop_connection(shard)

    async def invalidate_session(self, resumable: bool = False, shard: int | None = None) -> None:
        """Send op 9 (d=false by default): the client must IDENTIFY again."""
        await self.gateway.invalidate_session(resumable, shard)

    async def request_reconnect(self, shard: int | None = None) -> None:
        """Send op 7 RECONNECT."""
        await self.gateway.request_reconnect(shard)

    # -------------------------------------------------------------- faults
    def inject(
        self,
        match: str | Matcher,
        status: int | None = 500,
        count: int | None = 1,
        delay: float = 0.0,
        body: Any = None,
        retry_after: float = 0.05,
    ) -> Fault:
        """Fail (or just delay, with status=None) the next `count` matching requests."""
        return self.faults.add(Fault(match, status, count, delay, body, retry_after))

    @property
    def latency(self) -> float:
        """Extra delay added to every REST response."""
        return self.faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        """Set the extra delay (seconds)."""
        self.faults.latency = seconds

    def set_role_rate_limit(self, limit: int | None = 10, per_seconds: float = 1.0) -> None:
        """Member-role bucket: `limit` per `per_seconds`, one per guild (None = unlimited)."""
        self.ratelimits.set_role_rate_limit(limit, per_seconds)

    def set_global_rate_limit(self, limit: int | None = 50, per_seconds: float = 1.0) -> None:
        """The bot token's global bucket, shared by every process using it (None = off);
        refusals are counted in `ratelimits.global_429s`."""
        self.ratelimits.set_global_rate_limit(limit, per_seconds)

    # ------------------------------------------------------------- waiting
    def _notify(self) -> None:
        """Wake every wait_for() (called on each request, event and response)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, *, what: str | None = None
    ) -> Any:
        """Wait until `predicate()` is truthy (woken by every fake change; 10 ms fallback)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.01))
        return result

    def _loop_time(self) -> float:
        """The running loop's clock."""
        return asyncio.get_running_loop().time()

    def _violation(self, method: str, path: str, template: str | None, error: str) -> None:
        """Record an OpenAPI / protocol violation."""
        self.violations.append(Violation(method, path, template, error))

    # ------------------------------------------------------ shared helpers
    def _interaction_by_token(self, token: str) -> FakeInteraction | None:
        """The interaction whose webhook token this is, if any."""
        return next((i for i in self.interactions.values() if i.token == token), None)

    def _dm_channel(self, user_id: int) -> FakeChannel:
        """The (created on first use) DM channel with a user."""
        channel = self.dm_channels.get(user_id)
        if channel is None:
            user = self.add_user(user_id)
            channel = FakeChannel(snowflake(), None, 1, recipient=user)
            self.dm_channels[user_id] = self.channels[channel.id] = channel
        return channel

    def add_attachment(
        self, filename: str, content: bytes, content_type: str = "text/plain"
    ) -> dict[str, Any]:
        """Host a file; pass the returned dict as an ATTACHMENT option value."""
        aid = snowflake()
        self.attachments[aid] = (filename, content, content_type)
        url = f"{self.base_url}/attachments/{aid}/{urllib.parse.quote(filename)}"
        return {
            "id": str(aid),
            "filename": filename,
            "size": len(content),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    def _attachments(self, body: R.ParsedBody) -> list[dict[str, Any]]:
        """Host a request's uploaded files as Discord does. Part `files[n]` is described by
        the payload_json `attachments` entry whose id is n (filename, description); Discord
        takes the content type from the file name, not the part's header (discord.py sends
        every file as application/octet-stream), and gives images their width and height.
        A file over the upload limit is refused whole: 413, code 40005."""
        payload = body.json if isinstance(body.json, dict) else {}
        described = {
            str(entry.get("id")): entry
            for entry in payload.get("attachments") or []
            if isinstance(entry, dict)
        }
        hosted = []
        for part in body.files:
            if len(part.data) > R.ATTACHMENT_SIZE_LIMIT:
                raise R.DiscordHTTPError(413, R.ENTITY_TOO_LARGE)
        for part in body.files:
            index = re.fullmatch(r"files\[([0-9]+)\]", part.field)
            entry = described.get(index[1], {}) if index else {}
            filename = entry.get("filename") or part.filename or part.field
            guessed = mimetypes.guess_type(filename)[0]
            ctype = guessed or part.content_type or "application/octet-stream"
            if ctype.startswith("text/"):
                ctype += "; charset=utf-8"
            attachment = self.add_attachment(filename, part.data, ctype)
            if entry.get("description"):
                attachment["description"] = entry["description"]
            if (size := png_size(part.data)) is not None:
                attachment["width"], attachment["height"] = size
            hosted.append(attachment)
        return hosted

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        """GET /attachments/{id}/{filename}: the hosted file."""
        found = self.attachments.get(int(request.match_info["attachment_id"]))
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[1], content_type=found[2] or "application/octet-stream")

    def _self_user_payload(self) -> dict[str, Any]:
        """The bot's own user object (`GET /users/@me`, READY)."""
        return {
            **self.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
        }

    def _application_flags(self) -> int:
        """GATEWAY_GUILD_MEMBERS_LIMITED (1 << 15) while the members intent is enabled."""
        return 1 << 15 if self.members_intent_enabled else 0

    def _application_payload(self) -> dict[str, Any]:
        """The full application object (`GET /oauth2/applications/@me`)."""
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self._application_flags(),
            "owner": self.owner_user.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "redirect_uris": list(self.redirect_uris),
            "interactions_endpoint_url": None,
            "tags": [],
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    def _ready_payload(self, session_id: str, shard: list[int]) -> dict[str, Any]:
        """The READY event data."""
        return {
            "v": 10,
            "user": self._self_user_payload(),
            "guilds": [
                {"id": str(g.id), "unavailable": True} for g in self.gateway.shard_guilds(shard)
            ],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": shard,
            "application": {"id": str(self.application_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ['["fake-gateway",{"micros":0}]'],
        }
