"""Composition root: ShopBot builds the store, Stripe gateway, services, web server and worker."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import yarl
from aiohttp import web
from discord.ext import commands

from bot.api.integrations import license_routes, webhook_routes
from bot.api.keys import ApiKeys, RateLimiter
from bot.api.router import Api
from bot.api.routes import build_api
from bot.api.service import ApiService
from bot.clock import Clock, SystemClock
from bot.config import DISCORD_API, Settings
from bot.discord_adapter import DiscordAdapter, GuildDirectoryAdapter
from bot.fleet import (
    GLOBAL_LIMIT,
    FleetLease,
    IdentifyGate,
    RequestWindow,
    ShardClaims,
    ShardTaken,
    global_share,
)
from bot.lifecycle import run_expiry
from bot.oauth import DiscordOAuth
from bot.payments import StripeGateway
from bot.services import build_services
from bot.sharding import shard_for_guild
from bot.store import DatabaseUnreachable, Store
from bot.tasks import TaskGroup
from bot.vault import load_vault
from bot.web import Metrics, WebDeps, make_app
from bot.web_shop import WebShop

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.i18n",
    "cogs.errors",
    "cogs.buyer",
    "cogs.admin",
    "cogs.notices",
    "cogs.gateway",
)
SHUTDOWN_STEP_TIMEOUT = 8.0  # seconds per shutdown step; the whole stays well under 15 s
#: Gateway close codes about sharding: the configured shard range is wrong, or the bot is
#: in too many servers for one shard.
INVALID_SHARD, SHARDING_REQUIRED = 4010, 4011


class StartupError(Exception):
    """A start-up step failed; the message is the one line the operator sees."""


class ShopBot(commands.Bot):
    """The whole process: gateway client + web server + background workers on one loop."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.members = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            max_messages=None,
            **self._shard_options(settings),
        )
        self.settings = settings
        self.clock = clock or SystemClock()
        #: The shard range of this process (bot/sharding.py); services get it too.
        self.shard_range = settings.discord.shards
        self.store = Store(settings.database.path, self.clock, url=settings.database.url_value)
        #: Once-per-fleet periodic work runs while this lease is held (bot/fleet.py); on
        #: SQLite this is the only process, so it always is.
        self.lease = FleetLease(self.store, self.clock, always=self.store.dialect == "sqlite")
        #: PostgreSQL: this process's lease on each of its shards (one process per shard).
        self.shard_claims: ShardClaims | None = None
        if self.store.dialect == "postgresql":
            self.shard_claims = ShardClaims(self.store, self.clock, self.shard_range.ids)
        self.payments = StripeGateway(
            settings.stripe.secret_key.get_secret_value(),
            settings.stripe.webhook_secret.get_secret_value(),
            settings.stripe.api_base,
        )
        self.metrics = Metrics()
        self.background = TaskGroup()
        self._web_runner: web.AppRunner | None = None
        self.gateway_up = False  # see _watch_gateway
        discord.http.Route.BASE = settings.discord.api_base.rstrip("/")

    async def setup_hook(self) -> None:
        """Ordered start: store → services → cogs → command sync → web → workers."""
        try:
            await self.store.open()
        except DatabaseUnreachable as exc:
            raise StartupError(f"database.url: {exc}") from None
        settings = self.settings
        self.adapter = DiscordAdapter(self)
        if self.shard_claims is not None:  # before anything runs: no two processes per shard
            await self.shard_claims.claim()
        self.vault = await load_vault(self.store, settings.http.session_secret.get_secret_value())
        services = build_services(
            settings,
            self.store,
            self.payments,
            self.clock,
            self.adapter,
            on_job_outcome=lambda kind, outcome: self.metrics.jobs.labels(kind, outcome).inc(),
            vault=self.vault,
            shards=self.shard_range,
        )
        self.services = services
        self.shop = services.shop
        self.members_service, self.reconciler = services.members, services.reconciler
        self.worker, self.inbox = services.worker, services.inbox
        self.actions, self.reports = services.actions, services.reports
        self.admin_ops = services.admin_ops
        self.panels = services.panels
        self.licenses = services.licenses
        self._watch_member_updates()
        self._watch_entitlements()
        self._watch_gateway()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self._sync_commands()
        await self._start_web()
        await self._point_gateway()
        lifecycle = services.domain.lifecycle
        loops = {
            "inbox-writer": self.inbox.run_writer,
            "inbox": self.inbox.run,
            "delivery": self.worker.run,
            # Per guild, so per process: each reconciles the guilds its shards receive.
            "reconcile": self._reconcile_periodically,
            "fleet-lease": self.lease.run,
        }
        if self.shard_claims is not None:
            claims = self.shard_claims
            loops["shard-leases"] = functools.partial(
                claims.run, lambda: asyncio.ensure_future(self.close())
            )
        if self.store.dialect == "postgresql":  # jobs other processes queue for our guilds
            loops["job-wakeups"] = functools.partial(self.store.listen_for_jobs, self.worker.wake)
        once_per_fleet = {
            "expiry": lambda: run_expiry(
                self.store, lifecycle, self.worker.wake, periodic=services.notices.periodic
            ),
            "stripe-sync": services.stripe_sync.run,
            "sku-sync": self._sku_sync,
        }
        for name, loop in loops.items():
            self.background.supervise(loop, name)
        for name, loop in once_per_fleet.items():
            self.background.supervise(functools.partial(self.lease.while_held, loop), name)

    async def close(self) -> None:
        """Reverse order: workers and cogs, then Discord, then the web server, then the DB.

        Every step runs, each bounded by a timeout, whatever the one before it did: a cog
        that fails to unload must not leave the web server listening or the database open.
        """
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("deliveries in flight", self._finish_deliveries),
            ("background loops", self.background.close),
            ("fleet lease", self.lease.release),
            ("shard leases", self._release_shards),
            ("cogs", self._unload_cogs),
            ("discord", functools.partial(commands.Bot.close, self)),
            ("web server", self._stop_web),
            ("stripe client", self.payments.close),
            ("database", self.store.close),
        ]
        for name, step in steps:
            try:
                async with asyncio.timeout(SHUTDOWN_STEP_TIMEOUT):
                    await step()
            except Exception:
                log.exception("shutdown: closing the %s failed; carrying on", name)

    async def _finish_deliveries(self) -> None:
        if hasattr(self, "worker"):  # setup_hook ran: let deliveries in flight finish first
            await self.worker.finish_in_flight()

    async def _release_shards(self) -> None:
        if self.shard_claims is not None:
            await self.shard_claims.release()

    async def _unload_cogs(self) -> None:
        for extension in list(self.extensions):
            try:
                await self.unload_extension(extension)
            except Exception:
                log.exception("shutdown: unloading %s failed; carrying on", extension)

    async def _stop_web(self) -> None:
        if self._web_runner is not None:
            runner, self._web_runner = self._web_runner, None
            await runner.cleanup()

    async def reconcile_all(self, shard_id: int | None = None) -> None:
        """Fix role drift in every guild of this process (at each READY and periodically),
        or only in those of `shard_id` (that shard was identified again)."""
        for guild in list(self.guilds):
            if (
                shard_id is not None
                and shard_for_guild(guild.id, self.shard_range.count) != shard_id
            ):
                continue
            try:
                await self.reconciler.reconcile(guild.id, self.adapter.member_roles(guild.id))
            except Exception:
                log.exception("reconciliation of guild %s failed; will retry later", guild.id)
        self.worker.wake()

    async def _sku_sync(self) -> None:
        """Discord's entitlements at start (once logged in: the app id is known) and hourly."""
        await self.wait_until_ready()
        await self.services.skus.run()

    async def _reconcile_periodically(self) -> None:
        await self.wait_until_ready()
        interval = self.settings.shop.reconcile_interval_minutes * 60
        while True:
            await asyncio.sleep(interval)
            await self.reconcile_all()

    # start-up steps --------------------------------------------------------------------

    def _oauth(self) -> DiscordOAuth | None:
        """The Discord login of the web shop, when `discord.client_secret` is set."""
        discord_settings = self.settings.discord
        secret = discord_settings.client_secret.get_secret_value()
        if not secret:
            return None
        configured = discord_settings.application_id
        return DiscordOAuth(
            api_base=discord_settings.api_base,
            authorize_url=discord_settings.oauth_authorize_url,
            client_id=lambda: configured or self.adapter.application_id(),
            client_secret=secret,
            redirect_uri=f"{self.settings.http.public_url}/oauth/callback",
        )

    async def _start_web(self) -> None:
        guild_link = self._guild_link
        storefronts = self._storefronts
        web_shop = WebShop(self.store, self.shop, self.adapter, self.vault, storefronts, guild_link)
        deps = WebDeps(
            store=self.store,
            inbox=self.inbox,
            metrics=self.metrics,
            gateway_connected=lambda: self.gateway_up and not self.is_closed(),
            guild_link=guild_link,
            loops_down=lambda: self.background.down,
            metrics_token=self.settings.http.metrics_token.get_secret_value(),
            storefronts=storefronts,
            web_shop=web_shop,
            vault=self.vault,
            oauth=self._oauth(),
            secure_cookies=self.settings.http.public_url.startswith("https://"),
            clock=self.clock,
            api=self._integration_api(),
        )
        self._web_runner = web.AppRunner(make_app(deps), access_log=None)
        await self._web_runner.setup()
        http = self.settings.http
        try:
            await web.TCPSite(self._web_runner, http.host, http.port).start()
        except OSError as exc:
            raise StartupError(
                f"http.port: cannot listen on {http.host}:{http.port} ({exc.strerror})"
            ) from None
        log.info("web server listening on %s:%s", http.host, http.port)

    def _integration_api(self) -> Api:
        services = self.services
        domain = services.domain
        service = ApiService(
            self.store,
            self.settings,
            services.shop,
            services.actions,
            domain.fulfilment,
            domain.access,
            GuildDirectoryAdapter(self),
        )
        limiter = RateLimiter(self.settings.api.rate_limit_per_minute, self.clock)
        extra = (license_routes(services.licenses), webhook_routes(services.webhooks))
        return build_api(service, ApiKeys(self.store, self.clock), limiter, extra)

    def _storefronts(self) -> list[tuple[int, str]]:
        return [(guild.id, guild.name) for guild in self.guilds]

    @staticmethod
    def _guild_link(guild_id: int) -> str:
        return f"https://discord.com/channels/{guild_id}"

    @staticmethod
    def _shard_options(settings: Settings) -> dict[str, Any]:
        """Nothing for the unsharded bot; ShardedShopBot passes its shard range."""
        return {}

    async def _point_gateway(self) -> None:
        """Use discord.gateway_url; else ask a non-Discord api_base where its gateway is."""
        url = self.settings.discord.gateway_url
        if not url and self.settings.discord.api_base.rstrip("/") != DISCORD_API:
            data: Any = await self.http.request(discord.http.Route("GET", "/gateway/bot"))
            url = data["url"]
        if url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def _sync_commands(self) -> None:
        """Sync the command tree only when its payload changed since the last sync."""
        guild_ids = self.settings.discord.command_guild_ids
        scopes: list[discord.Object | None] = [discord.Object(g) for g in guild_ids] or [None]
        for scope in scopes:
            if scope is not None:
                self.tree.copy_global_to(guild=scope)
            translator = self.tree.translator
            payload = [
                await c.get_translated_payload(self.tree, translator)
                if translator
                else c.to_dict(self.tree)
                for c in self.tree.get_commands(guild=scope)
            ]
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            key = f"commands:{self.application_id}:{scope.id if scope else 'global'}"
            async with self.store.reading() as tx:
                if await tx.get_meta(key) == digest:
                    continue
            await self.tree.sync(guild=scope)
            async with self.store.transaction() as tx:
                await tx.set_meta(key, digest)
            log.info("synced %d commands to %s", len(payload), scope.id if scope else "global")

    def _watch_gateway(self) -> None:
        """`gateway_up`: READY or RESUMED seen since the socket last dropped (is_ready()
        stays true for good after the first READY)."""

        async def up() -> None:
            self.gateway_up = True

        async def down() -> None:
            self.gateway_up = False

        self.add_listener(up, "on_ready")
        self.add_listener(up, "on_resumed")
        self.add_listener(down, "on_disconnect")

    def _watch_entitlements(self) -> None:
        """Dispatch `raw_entitlement(event, data)` for ENTITLEMENT_CREATE/UPDATE/DELETE with
        Discord's JSON: discord.py's Entitlement model swaps or drops fields (FACTS.md), and
        the raw entitlement is what bot/skus.py stores."""
        parsers = self._connection.parsers
        for event in ("ENTITLEMENT_CREATE", "ENTITLEMENT_UPDATE", "ENTITLEMENT_DELETE"):
            original = parsers[event]

            def parse(data: Any, original: Any = original, event: str = event) -> None:
                self.dispatch("raw_entitlement", event, dict(data))  # first: ours never waits
                original(data)  # on discord.py's model parsing the same payload

            parsers[event] = parse

    def _watch_member_updates(self) -> None:
        """Dispatch `raw_member_update(guild_id, user_id, pending)` for every member update.

        With the member cache off, discord.py drops GUILD_MEMBER_UPDATE for uncached members,
        but we need it to see a member finish membership screening.
        """
        parsers = self._connection.parsers
        original = parsers["GUILD_MEMBER_UPDATE"]

        def parse(data: Any) -> None:
            original(data)
            self.dispatch(
                "raw_member_update",
                int(data["guild_id"]),
                int(data["user"]["id"]),
                bool(data.get("pending", False)),
            )

        parsers["GUILD_MEMBER_UPDATE"] = parse


#: Routes Discord does not count against the global limit: interaction answers and their
#: follow-ups (by the interaction's webhook token).
GLOBAL_EXEMPT = ("/interactions/", "/webhooks/")


class ShardedShopBot(ShopBot, commands.AutoShardedBot):
    """ShopBot over `discord.shard_count` shards, of which it runs `discord.shard_ids`.

    Several of these processes share one PostgreSQL database; their IDENTIFYs are spaced
    fleet-wide per `max_concurrency` bucket (bot/fleet.py) in `before_identify_hook`.
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.identify_gate = IdentifyGate(self.store, self.clock)
        self._shards_up: set[int] = set()
        self._shards_seen: set[int] = set()  # READY at least once
        shards = settings.discord.shards
        #: This process's share of Discord's global limit (all of it when it runs every
        #: shard: discord.py only reacts to a global 429, it does not keep under the limit).
        self.request_window = RequestWindow(global_share(len(shards.ids), shards.count))
        self._limit_requests(self.request_window)

    def _limit_requests(self, window: RequestWindow) -> None:
        """Every REST request but interaction answers (which Discord does not count against
        the global limit) waits for its turn in this process's share of the limit."""
        send = self.http.request

        async def request(route: discord.http.Route, **kwargs: Any) -> Any:
            if not route.path.startswith(GLOBAL_EXEMPT):
                await window.take()
            return await send(route, **kwargs)

        self.http.request = request  # type: ignore[method-assign]

    @staticmethod
    def _shard_options(settings: Settings) -> dict[str, Any]:
        shards = settings.discord.shards
        return {"shard_count": shards.count, "shard_ids": list(shards.ids)}

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Replaces discord.py's 5 s sleep per IDENTIFY with the fleet-wide bucket turn; the
        first IDENTIFY waits too (another process may have just used its bucket)."""
        await self.identify_gate.wait_turn(shard_id or 0)

    async def _point_gateway(self) -> None:
        """With an explicit shard count discord.py never asks GET /gateway/bot: ask it here
        for `max_concurrency` (the IDENTIFY buckets) and Discord's recommended count."""
        await super()._point_gateway()
        recommended, _url, limit = await self.http.get_bot_gateway()
        self.identify_gate.max_concurrency = max(1, int(limit["max_concurrency"]))
        shards = self.shard_range
        log.info(
            "running shards %s of %d (Discord recommends %d; IDENTIFY max_concurrency %d, "
            "%d of %d session starts left)",
            ",".join(map(str, shards.ids)), shards.count, recommended,
            self.identify_gate.max_concurrency, limit["remaining"], limit["total"],
        )  # fmt: skip
        log.info(
            "this process sends at most %d Discord requests/s: its %d of %d shards' "
            "share of the global %d (less a tenth kept back)",
            self.request_window.per_second, len(shards.ids), shards.count, GLOBAL_LIMIT,
        )  # fmt: skip
        if limit["remaining"] < len(shards.ids):
            log.warning(
                "Discord allows %d more session starts for %.0f min; this process needs %d",
                limit["remaining"], limit["reset_after"] / 60000, len(shards.ids),
            )  # fmt: skip

    def _watch_gateway(self) -> None:
        """`gateway_up`: every shard of this process READY or RESUMED since it dropped."""

        async def up(shard_id: int) -> None:
            self._shards_up.add(shard_id)
            self.gateway_up = self._shards_up >= set(self.shard_range.ids)

        async def down(shard_id: int) -> None:
            self._shards_up.discard(shard_id)
            self.gateway_up = False

        async def again(shard_id: int) -> None:
            """A shard identified again after its first READY (on_ready covered that one):
            events of its guilds may have been lost meanwhile."""
            if shard_id in self._shards_seen:
                self.background.start(self.reconcile_all(shard_id), name="reconcile-shard")
            self._shards_seen.add(shard_id)

        self.add_listener(up, "on_shard_ready")
        self.add_listener(up, "on_shard_resumed")
        self.add_listener(down, "on_shard_disconnect")
        self.add_listener(again, "on_shard_ready")


def make_bot(settings: Settings, clock: Clock | None = None) -> ShopBot:
    """ShardedShopBot when `discord.shard_count` is set, else the one-connection ShopBot."""
    cls = ShardedShopBot if settings.discord.sharded else ShopBot
    return cls(settings, clock)


async def run_bot(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; every start-up failure becomes a StartupError line."""
    bot = make_bot(settings)
    bot.store.hold_exclusively()  # DatabaseInUse: another run serves this SQLite file
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(signame: str) -> None:
        if not stopping:
            log.info("%s received: shutting down", signame)
            stopping.append(loop.create_task(bot.close()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        async with bot:
            await bot.start(settings.discord.token.get_secret_value())
    except discord.LoginFailure:
        raise StartupError("discord.token was rejected by Discord (check the bot token)") from None
    except discord.PrivilegedIntentsRequired:
        raise StartupError(
            "enable the Server Members intent for the bot in the Developer Portal"
        ) from None
    except ShardTaken as exc:
        raise StartupError(str(exc)) from None
    except discord.ConnectionClosed as exc:
        if exc.code == INVALID_SHARD:
            raise StartupError(
                f"Discord refused shard {exc.shard_id} (4010 invalid shard): check "
                "discord.shard_count and discord.shard_ids"
            ) from None
        if exc.code == SHARDING_REQUIRED:
            raise StartupError(
                "Discord requires sharding (4011: too many servers for one shard): set "
                "discord.shard_count (and shard_ids per process, docs/SCALING.md)"
            ) from None
        raise StartupError(f"Discord closed the gateway connection: {exc}") from None
    except (OSError, discord.GatewayNotFound, discord.HTTPException) as exc:
        raise StartupError(f"cannot connect to Discord: {type(exc).__name__}: {exc}") from None
    finally:
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
