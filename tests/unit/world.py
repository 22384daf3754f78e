"""A shop without Discord or a subprocess: real services and store, the fake Stripe (through
the real SDK) and a recording fake of the Discord port. The `world` fixture of tests/unit."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio

from bot.api.directory import ChannelInfo, RoleInfo
from bot.clock import FrozenClock
from bot.config import Settings
from bot.delivery import DeliveryWorker
from bot.errors import MemberMissing, MessageGone, PermanentFailure
from bot.inbox import Inbox
from bot.lifecycle import Lifecycle
from bot.membership import MemberService
from bot.models import Order
from bot.payments import StripeGateway
from bot.planning import Planner
from bot.services import Domain, Services, build_services
from bot.shop import ProductDraft, ShopService
from bot.store import Store
from bot.vault import Vault
from tests.fakes.stripe import FakeClock, FakeStripe

GUILD, ADMIN, BUYER, OTHER = 100, 1, 2, 3
ROLE = 555
OTHER_ROLE, HIGH_ROLE, CHANNEL = 556, 999, 4242
SECRET = "whsec_unit"


class RecordingDiscord:
    """A fake of the Discord boundary (DiscordActions) that records calls and keeps roles."""

    def __init__(self) -> None:
        self.roles: dict[int, set[int]] = defaultdict(set)
        self.calls: list[tuple[str, int, int]] = []
        self.dms: list[tuple[int, str]] = []
        self.dm_buttons: list[tuple[int, list[tuple[str, str]]]] = []
        self.absent: set[int] = set()
        self.refuse: set[int] = set()  # role changes for these members: Missing Permissions
        self.messages: dict[int, tuple[int, dict[str, Any]]] = {}  # id → (channel, body)
        self.edits: list[int] = []
        self.next_message_id = 900_000
        self.closed_dms: set[int] = set()  # these members do not accept DMs
        #: Posts in channels: (channel_id, content, buttons as (label, custom_id) pairs)
        self.posts: list[tuple[int, str, list[tuple[str, str]]]] = []
        self.forbidden_channels: set[int] = set()
        self.guild_names: dict[int, str] = {GUILD: "Test Server"}
        #: The guild's roles as the gateway cache has them (GuildDirectory).
        self.roles_of: dict[int, list[RoleInfo]] = {
            GUILD: [
                RoleInfo(
                    HIGH_ROLE, "Mods", 50, False, "@Mods is at or above the bot's highest role"
                ),
                RoleInfo(OTHER_ROLE, "Gold", 3, False, None),
                RoleInfo(ROLE, "VIP", 2, False, None),
                RoleInfo(GUILD, "@everyone", 0, False, "@everyone cannot be sold."),
            ]
        }
        self.channels_of: dict[int, list[ChannelInfo]] = {
            GUILD: [ChannelInfo(CHANNEL, "general", 0, None)]
        }

        #: Discord's store (bot/skus.py): the app's SKUs, its entitlements (listed in id
        #: order), and every consume call.
        self.skus: list[dict[str, Any]] = []
        self.entitlements: dict[int, dict[str, Any]] = {}
        self.consumed: list[int] = []

    def guild_roles(self, guild_id: int) -> list[RoleInfo] | None:
        return self.roles_of.get(guild_id)

    def text_channels(self, guild_id: int) -> list[ChannelInfo] | None:
        return self.channels_of.get(guild_id)

    async def wait_ready(self) -> None:
        return None

    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        if user_id in self.absent:
            raise MemberMissing("Unknown Member")
        if user_id in self.refuse:
            raise PermanentFailure("Missing Permissions")
        self.calls.append(("add", user_id, role_id))
        self.roles[user_id].add(role_id)

    async def member_role_ids(self, guild_id: int, user_id: int) -> frozenset[int]:
        if user_id in self.absent:
            raise MemberMissing("Unknown Member")
        return frozenset(self.roles[user_id])

    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        if user_id in self.absent:
            raise MemberMissing("Unknown Member")
        if user_id in self.refuse:
            raise PermanentFailure("Missing Permissions")
        self.calls.append(("remove", user_id, role_id))
        self.roles[user_id].discard(role_id)

    async def send_dm(
        self, user_id: int, content: str, buttons: Sequence[tuple[str, str]] = ()
    ) -> None:
        if user_id in self.closed_dms:
            raise PermanentFailure("the member does not accept DMs from this server")
        self.dms.append((user_id, content))
        self.dm_buttons.append((user_id, list(buttons)))

    async def send_channel(
        self,
        channel_id: int,
        content: str,
        buttons: Sequence[tuple[str, str]] = (),
        *,
        mentions: bool = True,
    ) -> None:
        if channel_id in self.forbidden_channels:
            raise PermanentFailure("Missing Permissions: the bot is not allowed to do this")
        assert len(content) <= 2000, "Discord refuses content over 2000 characters"
        assert len(buttons) <= 25, "Discord allows 25 buttons a message"
        self.calls.append(("channel", channel_id, 0))
        self.posts.append((channel_id, content, list(buttons)))

    def guild_name(self, guild_id: int) -> str | None:
        return self.guild_names.get(guild_id)

    async def kick(self, guild_id: int, user_id: int, reason: str) -> None:
        self.calls.append(("kick", user_id, 0))

    async def ban(self, guild_id: int, user_id: int, reason: str) -> None:
        self.calls.append(("ban", user_id, 0))

    async def create_invite(self, channel_id: int, reason: str) -> str:
        return "https://discord.gg/test"

    async def post_message(self, channel_id: int, body: dict[str, Any]) -> int:
        self.next_message_id += 1
        self.messages[self.next_message_id] = (channel_id, copy.deepcopy(body))
        return self.next_message_id

    async def edit_message(self, channel_id: int, message_id: int, body: dict[str, Any]) -> None:
        if self.messages.get(message_id, (None,))[0] != channel_id:
            raise MessageGone("Unknown Message")
        self.messages[message_id] = (channel_id, copy.deepcopy(body))
        self.edits.append(message_id)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        if self.messages.pop(message_id, (None,))[0] != channel_id:
            raise MessageGone("Unknown Message")

    async def add_member(
        self, guild_id: int, user_id: int, access_token: str, role_ids: list[int], reason: str
    ) -> bool:
        self.calls.append(("join", user_id, len(role_ids)))
        if user_id not in self.absent:
            return False
        self.absent.discard(user_id)
        self.roles[user_id].update(role_ids)
        return True

    async def list_skus(self) -> list[dict[str, Any]]:
        return [dict(sku) for sku in self.skus]

    async def list_entitlements(self, after: int, limit: int) -> list[dict[str, Any]]:
        ids = sorted(i for i in self.entitlements if i > after)[:limit]
        return [dict(self.entitlements[i]) for i in ids]

    async def consume_entitlement(self, entitlement_id: int) -> None:
        self.consumed.append(entitlement_id)


@dataclass
class World:
    settings: Settings
    store: Store
    shop: ShopService
    services: Services
    domain: Domain
    members: MemberService
    inbox: Inbox
    stripe: FakeStripe
    worker: DeliveryWorker
    discord: RecordingDiscord
    clock: FrozenClock
    stripe_clock: FakeClock
    vault: Vault
    delivered: set[str] = field(default_factory=set)

    @property
    def planner(self) -> Planner:
        return self.domain.planner

    @property
    def lifecycle(self) -> Lifecycle:
        return self.domain.lifecycle

    def advance(self, **kwargs: float) -> None:
        """Move our clock and Stripe's together."""
        self.clock.advance(**kwargs)
        self.stripe_clock.advance(int(timedelta(**kwargs).total_seconds()))

    async def deliver(self, event: dict[str, Any], inbox: Inbox | None = None) -> bool:
        """Receive and process one event as the webhook would; whether it was new."""
        inbox = inbox or self.inbox
        stored = await inbox.receive(event, json.dumps(event).encode())
        async with inbox.store.reading() as tx:
            pending = await tx.events.unprocessed()
        for item in pending:
            await inbox.process(item.id, item.payload)
        return stored

    async def flush(self) -> None:
        """Deliver every event the fake Stripe created since the last flush, in order."""
        for event in list(self.stripe.events.values()):
            if event["id"] not in self.delivered:
                self.delivered.add(event["id"])
                await self.deliver(copy.deepcopy(event))

    async def run_jobs(self) -> None:
        """Run due delivery jobs until none is left (the worker without its loop)."""
        for _ in range(50):
            async with self.store.reading() as tx:
                due = await tx.jobs.due()
            if not due:
                return
            for job in due:
                await self.worker.execute(job)
        raise AssertionError("jobs keep coming")

    async def expire(self) -> int:
        async with self.store.transaction() as tx:
            return await self.lifecycle.expire_due(tx)

    async def order(self, order_id: int) -> Order:
        async with self.store.reading() as tx:
            order = await tx.orders.get(order_id)
        assert order is not None
        return order

    def rows(self, sql: str, path: Path | None = None) -> list[Any]:
        """Rows of a query straight from the database, past the store (`?` placeholders
        are not used; on PostgreSQL the same SQL runs there)."""
        if path is None and self.store.dialect == "postgresql":
            return pg_rows(self.settings.database.url_value, sql)
        with sqlite3.connect(path or self.store.db.path) as conn:  # type: ignore[union-attr]
            return list(conn.execute(sql))


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one query on its own connection in a thread (World.rows is synchronous)."""

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(record.values()) for record in await conn.fetch(sql)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result()


def make_settings(fake: FakeStripe, db: Path, database_url: str = "") -> Settings:
    return Settings(
        discord={"token": "t"},
        stripe={"secret_key": fake.secret_key, "webhook_secret": SECRET, "api_base": fake.api_base},
        http={"public_url": "https://shop.test"},
        database={"path": db, "url": database_url},
    )


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """On SQLite in tmp_path (tests/pg/conftest.py gives the same World on PostgreSQL)."""
    async with open_world(tmp_path) as opened:
        yield opened


_MIGRATED: dict[str, bytes] = {}


async def _migrated_copy(path: Path) -> None:
    """Put a migrated SQLite database at `path`: migrated once per test session, then
    copied (migrating every test's database took ~15 s of the unit tier)."""
    if "sqlite" not in _MIGRATED:
        template = path.with_name("template.db")
        store = Store(template, FrozenClock(datetime.now(UTC)))
        await store.open()
        await store.close()  # closing checkpoints the WAL: the file is the whole database
        _MIGRATED["sqlite"] = template.read_bytes()
        template.unlink()
    path.write_bytes(_MIGRATED["sqlite"])


@asynccontextmanager
async def open_world(tmp_path: Path, database_url: str = "") -> AsyncIterator[World]:
    """A World on SQLite in tmp_path, or on the PostgreSQL database at `database_url`."""
    stripe_clock = FakeClock()
    clock = FrozenClock(datetime.fromtimestamp(stripe_clock.now, UTC))
    fake = FakeStripe(secret_key="sk_test_fake", clock=stripe_clock)
    await fake.start()
    settings = make_settings(fake, tmp_path / "shop.db", database_url)
    if not database_url:
        await _migrated_copy(settings.database.path)
    store = Store(settings.database.path, clock, url=database_url)
    await store.open()
    payments = StripeGateway(fake.secret_key, SECRET, fake.api_base)
    discord = RecordingDiscord()
    vault = Vault("unit-session-secret-" + "x" * 24)
    services = build_services(settings, store, payments, clock, discord, vault=vault)
    try:
        yield World(
            settings=settings,
            store=store,
            shop=services.shop,
            services=services,
            domain=services.domain,
            members=services.members,
            inbox=services.inbox,
            stripe=fake,
            worker=services.worker,
            discord=discord,
            clock=clock,
            stripe_clock=stripe_clock,
            vault=vault,
        )
    finally:
        await payments.close()
        await store.close()
        await fake.stop()


async def add_product(world: World, name: str, **extra: Any) -> int:
    draft = ProductDraft(name=name, price="4.99", role_id=ROLE, **extra)
    return (await world.shop.add_product(GUILD, ADMIN, draft)).id


async def add_message(world: World, product_id: int, stage: str, text: str) -> None:
    async with world.store.transaction() as tx:
        await tx.products.add_action(product_id, type="send_message", stage=stage, message=text)


async def buy(world: World, product: str, user: int = BUYER) -> Order:
    order, _ = await world.shop.start_checkout(GUILD, user, product)
    world.stripe.complete_checkout(order.stripe_session_id)
    await world.flush()
    return await world.order(order.id)


def period_end(world: World, sub_id: str) -> datetime:
    end = world.stripe.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]
    return datetime.fromtimestamp(end, UTC)
