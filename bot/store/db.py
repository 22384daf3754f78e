"""SQLite connection: pragmas, numbered migrations, serialized transactions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import IO

import aiosqlite

from bot.store.conn import Conn, InlineSqliteConn, PeekConn, SqliteConn

log = logging.getLogger(__name__)


#: How long a peek waits on SQLite's busy handler (WAL readers are rarely ever busy: only
#: while another connection recovers the WAL), blocking the loop meanwhile.
PEEK_BUSY_S = 1.0


class DatabaseTooNew(Exception):
    """The database was written by a newer shopbot than this one."""


class DatabaseInUse(Exception):
    """Another `shopbot run` already serves this SQLite file (one process per file)."""


def _migrations(package: str = "bot.store.migrations") -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql of the package, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(number), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class PriorityLock:
    """An asyncio lock whose urgent waiters go before every ordinary one.

    Stripe's webhook writer takes it urgently: an acknowledgement then waits for at most the
    one transaction that holds the lock, never for the background transactions queued
    behind it (processing, deliveries). Ordinary waiters keep their FIFO order.
    """

    def __init__(self) -> None:
        self._held = False
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._normal: collections.deque[asyncio.Future[None]] = collections.deque()

    def urgent_waiting(self) -> bool:
        """An urgent caller waits: a long holder should let go soon."""
        return any(not waiter.done() for waiter in self._urgent)

    @asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed the lock just as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the lock passes straight to this waiter
                    return
        self._held = False


class Database:
    """One aiosqlite connection; every statement runs under one (priority) asyncio lock.

    SQLite has a single writer anyway; serializing here means a transaction opened by one
    coroutine is never interleaved with statements from another.
    """

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._raw: sqlite3.Connection | None = None  # the one sqlite3 connection behind it
        self._seam: SqliteConn | None = None
        self._inline: InlineSqliteConn | None = None
        self._process_lock: IO[str] | None = None
        self._lock = PriorityLock()
        self._reader: sqlite3.Connection | None = None
        self._peek_lock = asyncio.Lock()
        #: Loop time since which another process has held the write lock (None: it has not).
        self.locked_since: float | None = None

    async def open(self) -> None:
        """Open the file (creating its folder), set pragmas and migrate."""
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        opened: list[sqlite3.Connection] = []

        def connect() -> sqlite3.Connection:  # on aiosqlite's thread
            # check_same_thread=False: write transactions run their statements on the event
            # loop's thread (InlineSqliteConn), never while aiosqlite's thread runs one.
            raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            opened.append(raw)
            return raw

        self._conn = await aiosqlite.Connection(connect, 64)
        self._raw = opened[0]
        self._conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            await self._conn.execute(pragma)
        await self.migrate()
        if str(self.path) != ":memory:":
            self._reader = self._open_reader()

    def _open_reader(self) -> sqlite3.Connection:
        """The peek connection: WAL lets it read beside the writer; it may not write."""
        reader = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=PEEK_BUSY_S
        )
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA query_only=ON")
        return reader

    @property
    def where(self) -> str:
        """The database as the operator named it (for messages)."""
        return str(self.path)

    def hold_exclusively(self) -> None:
        """Make this the only `shopbot run` on the file: SQLite has one writer on one machine,
        so a second process would only fight over the write lock (and run every job twice).

        An exclusive `flock` on `<db>.lock`, held until `close()` (or the process ends, even
        by SIGKILL: the kernel drops it). Verbs that only read or copy the file (backup,
        export, migrate) do not take it, so they work beside a running bot.
        """
        if str(self.path) == ":memory:" or self._process_lock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DatabaseInUse(
                f"database {self.path} is in use by another shopbot run (pid {holder}); "
                "SQLite serves one process: stop that one, or set database.url to a "
                "PostgreSQL database to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._process_lock = handle

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
            self._raw = None
            self._seam = None
            self._inline = None
        if self._process_lock is not None:
            self._process_lock.close()  # closing the file drops the flock
            self._process_lock = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    @property
    def seam(self) -> SqliteConn:
        """The connection as repositories use it (bot/store/conn.py)."""
        if self._seam is None or self._seam.raw is not self.conn:
            self._seam = SqliteConn(self.conn)
        return self._seam

    @property
    def inline(self) -> InlineSqliteConn:
        """The connection as write transactions use it: statements on the loop's thread."""
        if self._raw is None:
            raise RuntimeError("database is not open")
        if self._inline is None or self._inline.raw is not self._raw:
            self._inline = InlineSqliteConn(self._raw)
        return self._inline

    async def migrate(self) -> int:
        """Apply pending migrations in one transaction; return the new version."""
        async with self._lock.hold():
            row = await (await self.conn.execute("PRAGMA user_version")).fetchone()
            assert row is not None  # PRAGMA user_version always answers one row
            current = row[0]
            steps = _migrations()
            latest = steps[-1][0] if steps else 0
            if current > latest:
                raise DatabaseTooNew(
                    f"database {self.path} is at schema version {current}, "
                    f"this shopbot only knows up to {latest}; upgrade shopbot"
                )
            pending = [step for step in steps if step[0] > current]
            if not pending:
                return current
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                for version, name, sql in pending:
                    log.info("applying migration %04d_%s", version, name)
                    for statement in _split(sql):
                        await self.conn.execute(statement)
                await self.conn.execute(f"PRAGMA user_version = {latest}")
                await self.conn.execute("COMMIT")
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            return latest

    def urgent_waiting(self) -> bool:
        """An urgent transaction (a webhook acknowledgement) waits for the lock."""
        return self._lock.urgent_waiting()

    @asynccontextmanager
    async def transaction(self, urgent: bool = False) -> AsyncIterator[InlineSqliteConn]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception, cancellation included).

        BEGIN (which may wait for another process), COMMIT (the fsync) and ROLLBACK run on
        aiosqlite's thread; the statements between them run inline on the loop's thread
        (InlineSqliteConn: no thread switch per statement, issue 15).

        `urgent` goes before every waiting ordinary transaction (see PriorityLock).
        Another process holding the write lock past `busy_timeout` (a backup, the sqlite3
        shell) is waited out rather than failing the work: nothing is half-done, and
        `locked_since` tells /healthz while it lasts.
        """
        async with self._lock.hold(urgent):
            try:
                await self._begin_immediate()
                yield self.inline
            except BaseException:
                await self._rollback()
                raise
            try:
                await self.conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _begin_immediate(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if self.locked_since is None:
                    self.locked_since = loop.time()
                    log.warning(
                        "database %s is locked by another process; waiting for it", self.path
                    )
                continue  # busy_timeout already waited; SQLite takes the lock once it is free
            if self.locked_since is not None:
                log.warning(
                    "database lock released after %.1f s; carrying on",
                    loop.time() - self.locked_since,
                )
                self.locked_since = None
            return

    async def ping(self) -> bool:
        """A cheap read that takes no write lock (for /healthz)."""
        async with self.reading() as conn:
            await conn.fetch_all("SELECT 1")
        return True

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SqliteConn]:
        """A consistent read (deferred transaction, no write lock taken)."""
        async with self._lock.hold():
            try:
                await self.conn.execute("BEGIN")
                yield self.seam
            finally:
                await self._rollback()

    async def announce_jobs(self, conn: Conn) -> None:
        """Other processes to tell of new jobs: none (SQLite serves one process)."""

    @property
    def reader(self) -> sqlite3.Connection | None:
        """The peek connection (None for an in-memory database: peeks use `reading`)."""
        return self._reader

    @asynccontextmanager
    async def peek(self) -> AsyncIterator[SqliteConn | PeekConn]:
        """A consistent read of a few indexed rows, run on the event loop (see PeekConn).

        It waits neither for the writer's lock nor for the database thread: a license check
        or an API key lookup answers while the inbox holds a long write transaction. Only
        for lookups that take microseconds; anything that scans belongs in `reading`.
        """
        if self._reader is None:
            async with self.reading() as conn:
                yield conn
            return
        async with self._peek_lock:  # one snapshot at a time on the one reader connection
            reader = self._reader
            reader.execute("BEGIN")
            try:
                yield PeekConn(reader)
            finally:
                reader.execute("ROLLBACK")

    async def _rollback(self) -> None:
        """End whatever transaction is open, even while being cancelled.

        A task cancelled during `BEGIN` leaves aiosqlite's thread running it; statements
        run in order, so this ROLLBACK follows it. The ROLLBACK is shielded so cancellation
        cannot skip it, and a cancellation that arrives meanwhile is passed on once it is
        done (suppressing it made a cancelled loop carry on, and shutdown hang).
        """
        rollback = asyncio.ensure_future(self.conn.execute("ROLLBACK"))
        try:
            await asyncio.shield(rollback)
        except asyncio.CancelledError:
            with contextlib.suppress(sqlite3.OperationalError, asyncio.CancelledError):
                await rollback
            raise
        except sqlite3.OperationalError:
            pass  # no transaction was open

    async def backup(self, target: Path) -> None:
        """Online copy of the whole database to `target`."""
        async with self._lock.hold(), aiosqlite.connect(target) as dest:
            await self.conn.backup(dest)


def _split(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside our literals)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
