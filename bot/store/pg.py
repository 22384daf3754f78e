"""PostgreSQL: the same store contract as bot/store/db.py, for several processes.

Driver: asyncpg — an asyncio-native driver (no thread per connection like aiosqlite, no
sync driver in an executor), binary protocol and prepared-statement caching, a connection
pool, and first-class LISTEN/NOTIFY and COPY for the scale-out work that follows.

Transactions keep SQLite's `BEGIN IMMEDIATE` meaning: every write transaction starts by
taking one transaction-scoped advisory lock (`pg_advisory_xact_lock`), so writers are
serialised across every process exactly as SQLite serialises them within one, and the
read-check-write code in the services (an event's status read before it is applied, a
free license key chosen, a claim code retried) stays correct without being rewritten.
The isolation level is READ COMMITTED: each statement sees everything committed before
it, and since no other writer runs meanwhile, a transaction sees the database as it was
when it took the lock plus its own writes — what SQLite gives. SERIALIZABLE would need
the whole unit of work retried on a serialization failure, and `Store.transaction()` is
an `async with` block whose body cannot be re-run. Reads (`reading()`) take no lock: a
REPEATABLE READ READ ONLY snapshot, like SQLite's deferred read transaction.

The one writer lock is where issue 16's later steps narrow things (claims per shard with
`FOR UPDATE SKIP LOCKED`, leases): they need no change here, only their own statements.

A statement that PostgreSQL refuses aborts the whole transaction there, where SQLite
fails just the statement. Writes therefore run inside a savepoint, so `Duplicate` leaves
the transaction usable as on SQLite (a claim code collision is retried in place); any
other error leaves it aborted, and committing an aborted transaction raises instead of
silently rolling back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bot.store.conn import Conn, Duplicate, Params, numbered
from bot.store.db import DatabaseTooNew, PriorityLock, _migrations

log = logging.getLogger(__name__)

#: A pooled connection (the pool hands out proxies of asyncpg.Connection).
Raw = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: pg_advisory_xact_lock keys (any fixed 64-bit numbers; "shop" + a digit).
WRITER_LOCK = 0x73686F7001
MIGRATE_LOCK = 0x73686F7002
#: NOTIFY channel: a committed transaction queued delivery jobs (any process's guilds).
JOBS_CHANNEL = "shopbot_jobs"
#: How often the LISTEN connection is checked while no notification arrives.
LISTEN_CHECK_S = 5.0
#: Waiting this long for another process's write transaction shows in /healthz.
LOCK_REPORT_AFTER = 5.0


class TransactionAborted(Exception):
    """PostgreSQL refused a statement earlier in this transaction; nothing of it was kept."""


class DatabaseUnreachable(Exception):
    """PostgreSQL at database.url could not be reached or refused our login."""


class BackupUnsupported(Exception):
    """`shopbot backup` copies SQLite files; PostgreSQL has its own tools."""


def redacted(url: str) -> str:
    """The URL with its password replaced by `***` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class PgRow(tuple[Any, ...]):
    """An asyncpg Record as sqlite3.Row behaves: by position or name, `keys()` a list, and
    equal to the tuple of its values."""

    __slots__ = ()
    _names: dict[str, int]
    _keys: list[str]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return self._keys


_row_classes: dict[tuple[str, ...], type[PgRow]] = {}


def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    cls = _row_classes.get(names)
    if cls is None:
        cls = type("Row", (PgRow,), {"__slots__": ()})
        cls._names = {name: index for index, name in enumerate(names)}
        cls._keys = list(names)
        _row_classes[names] = cls
    return cls


def _rows(records: Sequence[asyncpg.Record]) -> list[Any]:
    if not records:
        return []
    cls = _row_class(tuple(records[0].keys()))
    return [cls(record.values()) for record in records]


def _args(params: Params) -> list[Any]:
    """Python values as our columns hold them: flags are integers (as in SQLite)."""
    return [int(value) if isinstance(value, bool) else value for value in params]


def _numeric(text: str) -> int | Decimal:
    """NUMERIC (what SUM of BIGINT gives) as an int when whole, as SQLite's SUM is."""
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else value


async def _prepare_connection(raw: asyncpg.Connection) -> None:
    await raw.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=_numeric, format="text"
    )


def _may_conflict(sql: str) -> bool:
    """Whether a write can hit a unique constraint (then it runs in a savepoint)."""
    head = sql.lstrip()[:6].upper()
    if head not in ("INSERT", "UPDATE"):
        return False
    return not sql.rstrip().upper().endswith("ON CONFLICT DO NOTHING")


class PgConn:
    """asyncpg behind the seam (bot/store/conn.py) for one open transaction."""

    dialect = "postgresql"

    def __init__(self, raw: Raw) -> None:
        self.raw = raw

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        return _rows(await self.raw.fetch(numbered(sql), *_args(params)))

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        rows = _rows(await self.raw.fetch(numbered(sql), *_args(params)))
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        status = await self._write(sql, params, returning=False)
        assert isinstance(status, str)
        tail = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1", "DELETE 0"
        return int(tail) if tail.isdigit() else 0

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        row = await self._write(sql, params, returning=True)
        return None if row is None else int(row[0])  # type: ignore[index]

    async def _write(self, sql: str, params: Params, *, returning: bool) -> object:
        query = numbered(sql) + (" RETURNING id" if returning else "")
        args = _args(params)
        if not _may_conflict(sql):
            return await self._run(query, args, returning)
        await self.raw.execute("SAVEPOINT shopbot_write")
        try:
            result = await self._run(query, args, returning)
        except asyncpg.UniqueViolationError as exc:
            await self.raw.execute("ROLLBACK TO SAVEPOINT shopbot_write")
            await self.raw.execute("RELEASE SAVEPOINT shopbot_write")
            raise Duplicate(str(exc)) from None
        await self.raw.execute("RELEASE SAVEPOINT shopbot_write")
        return result

    async def _run(self, query: str, args: list[Any], returning: bool) -> object:
        if returning:
            return await self.raw.fetchrow(query, *args)
        return await self.raw.execute(query, *args)


class PgDatabase:
    """A small asyncpg pool; the same interface as the SQLite `Database`."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.where = redacted(url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # One writer per process waits for the fleet-wide lock; the others wait here, so a
        # queue of writers does not hold every pooled connection.
        self._writer = PriorityLock()  # this process's writers: webhook acks go first
        self._waiting_since: float | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                init=_prepare_connection,
                timeout=10,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnreachable(
                f"cannot reach database {self.where}: {type(exc).__name__}: {exc}"
            ) from None
        await self.migrate()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def locked_since(self) -> float | None:
        """Loop time since which this process has waited for another one's write
        transaction, once that is longer than SQLite's busy_timeout (None: it has not). Short
        waits are normal with several writers and are not reported to /healthz."""
        since = self._waiting_since
        if since is None or asyncio.get_running_loop().time() - since < LOCK_REPORT_AFTER:
            return None
        return since

    def hold_exclusively(self) -> None:
        """Several processes may share a PostgreSQL database: nothing to hold."""

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def migrate(self) -> int:
        """Apply pending bot/store/migrations_pg/ files in one transaction (PostgreSQL's DDL
        is transactional); `schema_version` has one row per applied file. Processes starting
        together wait for each other on an advisory lock, so each file runs once."""
        steps = _migrations("bot.store.migrations_pg")
        latest = steps[-1][0] if steps else 0
        async with self.pool.acquire() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY,"
                ' name TEXT COLLATE "C" NOT NULL, applied_at TEXT COLLATE "C" NOT NULL)'
            )
            current = await raw.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > latest:
                raise DatabaseTooNew(
                    f"database {self.where} is at schema version {current}, "
                    f"this shopbot only knows up to {latest}; upgrade shopbot"
                )
            for version, name, sql in steps:
                if version <= current:
                    continue
                log.info("applying migration %04d_%s (postgresql)", version, name)
                await raw.execute(sql)  # the whole file: simple query protocol
                await raw.execute(
                    "INSERT INTO schema_version (version, name, applied_at)"
                    " VALUES ($1, $2, to_char(now() AT TIME ZONE 'UTC',"
                    ' \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'))',
                    version,
                    name,
                )
        return max(current, latest)

    def urgent_waiting(self) -> bool:
        """An urgent transaction (a webhook acknowledgement) waits for this process's turn."""
        return self._writer.urgent_waiting()

    @asynccontextmanager
    async def transaction(self, urgent: bool = False) -> AsyncIterator[PgConn]:
        """A write transaction, serialised with every other writer of every process;
        `urgent` goes before this process's other waiting writers (see PriorityLock)."""
        async with self._writer.hold(urgent), self.pool.acquire() as raw:
            await raw.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            try:
                await self._take_writer_lock(raw)
                yield PgConn(raw)
            except BaseException:
                await _rollback(raw)
                raise
            try:
                status = await raw.execute("COMMIT")
            except BaseException:
                await _rollback(raw)
                raise
            if status != "COMMIT":  # PostgreSQL answers ROLLBACK for an aborted transaction
                raise TransactionAborted(
                    "the database refused a statement in this transaction; nothing was saved"
                )

    async def _take_writer_lock(self, raw: Raw) -> None:
        if await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", WRITER_LOCK):
            return
        self._waiting_since = asyncio.get_running_loop().time()
        log.debug("another process is writing to %s; waiting for it", self.where)
        try:
            await raw.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
        finally:
            self._waiting_since = None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PgConn]:
        """A consistent read-only snapshot; takes no lock."""
        async with self.pool.acquire() as raw:
            await raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PgConn(raw)
            finally:
                await _rollback(raw)

    async def announce_jobs(self, conn: Conn) -> None:
        """Inside a transaction that queued jobs: tell every process once it commits
        (PostgreSQL delivers a NOTIFY at COMMIT, and drops it on ROLLBACK)."""
        await conn.fetch_one("SELECT pg_notify(?, '')", (JOBS_CHANNEL,))

    async def listen_for_jobs(self, on_jobs: Callable[[], None]) -> None:
        """LISTEN on a dedicated connection (not the pool's) and call `on_jobs` at each
        notification, and once at the start (what was queued while not listening). Raises
        when the connection is lost, so the supervisor connects and LISTENs again; the
        delivery worker's polling covers the gap."""
        raw = await asyncpg.connect(self.url, timeout=10)
        lost = asyncio.Event()
        try:
            raw.add_termination_listener(lambda _conn: lost.set())
            await raw.add_listener(JOBS_CHANNEL, lambda *_args: on_jobs())
            log.info("listening for delivery jobs of other processes (%s)", JOBS_CHANNEL)
            on_jobs()
            while not lost.is_set() and not raw.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_S)
        finally:
            with contextlib.suppress(Exception):
                await raw.close(timeout=2)
        raise ConnectionError(f"the LISTEN connection to {self.where} was lost")

    @asynccontextmanager
    async def peek(self) -> AsyncIterator[PgConn]:
        """A few indexed rows: on PostgreSQL simply a read snapshot from the pool."""
        async with self.reading() as conn:
            yield conn

    async def ping(self) -> bool:
        async with self.reading() as conn:
            await conn.fetch_all("SELECT 1")
        return True

    async def backup(self, target: Path) -> None:
        raise BackupUnsupported(
            f"backup copies SQLite files; database.url is PostgreSQL ({self.where}): "
            f"use pg_dump, e.g. pg_dump --format=custom --file={target} '<database.url>'"
        )


async def _rollback(raw: Raw) -> None:
    """End whatever transaction is open, even while being cancelled; a connection that
    cannot say ROLLBACK is closed so the pool never hands it out mid-transaction."""
    rollback = asyncio.ensure_future(raw.execute("ROLLBACK"))
    try:
        await asyncio.shield(rollback)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await rollback
        if not rollback.done() or rollback.cancelled() or rollback.exception() is not None:
            raw.terminate()
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        raw.terminate()
