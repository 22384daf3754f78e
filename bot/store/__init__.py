"""Storage: `Store.transaction()` yields a `Tx` whose repositories share one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from bot.clock import Clock
from bot.store.db import Database, DatabaseTooNew
from bot.store.events import AuditRepo, EventRepo
from bot.store.orders import EntitlementRepo, OrderRepo
from bot.store.products import ProductRepo
from bot.store.queue import JobRepo
from bot.store.roles import RoleRepo
from bot.store.stats import StatsRepo
from bot.store.subscriptions import SubscriptionRepo

__all__ = ["DatabaseTooNew", "Store", "Tx"]


class Tx:
    """The repositories, all bound to one open transaction."""

    def __init__(self, conn: aiosqlite.Connection, clock: Clock) -> None:
        self.conn = conn
        self.now = clock.now()
        self.products = ProductRepo(conn, self.now)
        self.orders = OrderRepo(conn, self.now)
        self.entitlements = EntitlementRepo(conn, self.now)
        self.jobs = JobRepo(conn, self.now)
        self.events = EventRepo(conn, self.now)
        self.stats = StatsRepo(conn, self.now)
        self.roles = RoleRepo(conn, self.now)
        self.audit = AuditRepo(conn, self.now)
        self.subscriptions = SubscriptionRepo(conn, self.now)

    async def get_meta(self, key: str) -> str | None:
        row = await (
            await self.conn.execute("SELECT value FROM meta WHERE key=?", (key,))
        ).fetchone()
        return None if row is None else row[0]

    async def set_meta(self, key: str, value: str) -> None:
        await self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class Store:
    """Owns the database; hands out transactions."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.db = Database(path)
        self.clock = clock

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE); commits on success."""
        async with self.db.transaction() as conn:
            yield Tx(conn, self.clock)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Tx]:
        """A read-only snapshot."""
        async with self.db.reading() as conn:
            yield Tx(conn, self.clock)
