"""Storage: `Store.transaction()` yields a `Tx` whose repositories share one transaction."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.clock import Clock
from bot.store.api import ApiRepo
from bot.store.base import ReadCache
from bot.store.claims import ClaimAttemptRepo
from bot.store.conn import Conn, Duplicate
from bot.store.customers import CustomerRepo
from bot.store.db import Database, DatabaseInUse, DatabaseTooNew
from bot.store.events import AuditRepo, EventRepo
from bot.store.fleet import FleetRepo
from bot.store.invoices import InvoiceRepo
from bot.store.join_tokens import JoinTokenRepo
from bot.store.licenses import LicenseRepo
from bot.store.locales import LocaleRepo
from bot.store.notices import NoticeRepo
from bot.store.orders import EntitlementRepo, OrderRepo
from bot.store.panels import PanelRepo
from bot.store.pg import DatabaseUnreachable, PgDatabase
from bot.store.products import ProductRepo
from bot.store.queue import JobRepo
from bot.store.roles import RoleRepo
from bot.store.skus import SkuRepo
from bot.store.stats import StatsRepo
from bot.store.subscriptions import SubscriptionRepo
from bot.store.webhooks import WebhookRepo

__all__ = ["DatabaseInUse", "DatabaseTooNew", "DatabaseUnreachable", "Duplicate", "Store", "Tx"]

INSTALL_ID = "install_id"


class Tx:
    """The repositories, all bound to one open transaction."""

    def __init__(self, conn: Conn, clock: Clock, install_id: str) -> None:
        self.conn = conn
        self.now = clock.now()
        #: This install's id (SPEC §3): carried by every Stripe reference, metadata and key.
        self.install_id = install_id
        #: Reads kept for the rest of this transaction (Repo.caches_reads).
        self.cache: ReadCache = {}
        self.customers = CustomerRepo(conn, self.now)
        self.products = ProductRepo(conn, self.now, self.cache)
        self.orders = OrderRepo(conn, self.now)
        self.entitlements = EntitlementRepo(conn, self.now)
        self.jobs = JobRepo(conn, self.now)
        self.events = EventRepo(conn, self.now)
        self.stats = StatsRepo(conn, self.now)
        self.roles = RoleRepo(conn, self.now)
        self.audit = AuditRepo(conn, self.now)
        self.subscriptions = SubscriptionRepo(conn, self.now)
        self.claims = ClaimAttemptRepo(conn, self.now)
        self.invoices = InvoiceRepo(conn, self.now)
        self.panels = PanelRepo(conn, self.now)
        self.join_tokens = JoinTokenRepo(conn, self.now)
        self.notices = NoticeRepo(conn, self.now, self.cache)
        self.api = ApiRepo(conn, self.now)
        self.skus = SkuRepo(conn, self.now)
        self.licenses = LicenseRepo(conn, self.now)
        self.webhooks = WebhookRepo(conn, self.now, self.cache)
        self.locales = LocaleRepo(conn, self.now, self.cache)
        self.fleet = FleetRepo(conn, self.now)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested unit of work: if its block raises, only its statements are rolled back
        (and the exception goes on); the rest of the transaction is kept."""
        await self.conn.execute("SAVEPOINT unit")
        try:
            yield
        except Exception:
            self.cache.clear()  # reads kept inside the savepoint may have seen its writes
            await self.conn.execute("ROLLBACK TO SAVEPOINT unit")
            await self.conn.execute("RELEASE SAVEPOINT unit")
            raise
        await self.conn.execute("RELEASE SAVEPOINT unit")

    async def get_meta(self, key: str) -> str | None:
        row = await self.conn.fetch_one("SELECT value FROM meta WHERE key=?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class Store:
    """Owns the database; hands out transactions.

    SQLite at `path` (one process), or PostgreSQL when `url` is set (`database.url`,
    several processes; bot/store/pg.py). The repositories are the same code on both.
    """

    def __init__(self, path: Path, clock: Clock, *, url: str = "") -> None:
        self.db: Database | PgDatabase
        if url:
            self.db = PgDatabase(url)
        else:
            self.db = Database(path)
        self.clock = clock
        #: Called after a transaction that made jobs due has committed (the worker's wake-up),
        #: so no caller has to remember to wake the worker itself.
        self.on_jobs_due: Callable[[], None] | None = None
        self.install_id = ""  # set by open(): generated at the first start, then kept

    async def open(self) -> None:
        await self.db.open()
        async with self.db.transaction() as conn:
            tx = Tx(conn, self.clock, "")
            install_id = await tx.get_meta(INSTALL_ID)
            if install_id is None:
                install_id = secrets.token_hex(8)
                await tx.set_meta(INSTALL_ID, install_id)
        self.install_id = install_id

    async def close(self) -> None:
        await self.db.close()

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.db.dialect

    @property
    def where(self) -> str:
        """The database for messages: the SQLite path, or the URL without its password."""
        return self.db.where

    def hold_exclusively(self) -> None:
        """For `shopbot run`: refuse (DatabaseInUse) when another process already serves
        this SQLite file; PostgreSQL is meant to be shared."""
        self.db.hold_exclusively()

    async def ping(self) -> bool:
        """The database answers a read (takes no write lock)."""
        return await self.db.ping()

    def locked_for(self) -> float | None:
        """Seconds another process has held the write lock we are waiting for, or None."""
        since = self.db.locked_since
        return None if since is None else asyncio.get_running_loop().time() - since

    def urgent_waiting(self) -> bool:
        """An urgent transaction waits: a long batch of background work should commit now."""
        return self.db.urgent_waiting()

    async def listen_for_jobs(self, on_jobs: Callable[[], None]) -> None:
        """PostgreSQL: call `on_jobs` whenever any process commits new delivery jobs (until
        the LISTEN connection is lost: then it raises, to be run again). SQLite: one
        process, whose own commits already wake it; returns at once."""
        if isinstance(self.db, PgDatabase):
            await self.db.listen_for_jobs(on_jobs)

    @asynccontextmanager
    async def transaction(self, urgent: bool = False) -> AsyncIterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE); commits on success. `urgent` (the
        webhook writer) goes before every ordinary transaction waiting for the database."""
        async with self.db.transaction(urgent) as conn:
            tx = Tx(conn, self.clock, self.install_id)
            yield tx
            if tx.jobs.queued:  # the jobs may be another process's guilds (PostgreSQL)
                await self.db.announce_jobs(conn)
        if tx.jobs.queued and self.on_jobs_due is not None:
            self.on_jobs_due()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Tx]:
        """A read-only snapshot."""
        async with self.db.reading() as conn:
            yield Tx(conn, self.clock, self.install_id)

    @asynccontextmanager
    async def peek(self) -> AsyncIterator[Tx]:
        """A read-only snapshot for a few indexed lookups on a hot path (API keys, license
        checks): it does not queue behind writes (bot/store/db.py `Database.peek`)."""
        async with self.db.peek() as conn:
            yield Tx(conn, self.clock, self.install_id)
