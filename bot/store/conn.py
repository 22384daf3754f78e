"""The connection seam: the one interface repositories use, whatever the database.

Repositories (bot/store/*.py) write SQL with `?` placeholders in the portable subset both
SQLite and PostgreSQL accept, and call only these four methods. `SqliteConn` passes the SQL
through to aiosqlite; `PgConn` (bot/store/pg.py) numbers the placeholders (`$1`, `$2`, …),
returns new ids with `RETURNING id` and maps PostgreSQL's errors onto ours. Rows from both are
sqlite3.Row-like: indexable by position and by column name, `keys()` a list, equal to tuples.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import aiosqlite


class Duplicate(Exception):
    """A unique constraint refused the write (a name or code already taken); nothing changed."""


class Row(Protocol):
    """What a row offers on both backends."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...
    def __len__(self) -> int: ...


Params = Sequence[Any]


class Conn(Protocol):
    """One open transaction's connection, as repositories see it."""

    #: "sqlite" or "postgresql" (for the rare caller that must know, e.g. tests).
    dialect: str

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row the statement returns."""

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """The first row (None: no row)."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a write; how many rows it changed (an INSERT … ON CONFLICT DO NOTHING that
        was skipped changed 0). Raises Duplicate when a unique constraint refuses it, and
        then the statement changed nothing and the transaction goes on."""

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        """Run an INSERT into a table with an `id` column; the new row's id, or None when
        `ON CONFLICT … DO NOTHING` skipped it. Raises Duplicate like `execute`."""


class SqliteConn:
    """aiosqlite behind the seam; the SQL goes through unchanged."""

    dialect = "sqlite"

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        return list(await self.raw.execute_fetchall(sql, tuple(params)))

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        rows = await self.raw.execute_fetchall(sql, tuple(params))  # one trip to the DB thread
        return next(iter(rows), None)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return (await self._write(sql, params)).rowcount

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        cursor = await self._write(sql, params)
        if not cursor.rowcount:
            return None
        return cursor.lastrowid

    async def _write(self, sql: str, params: Params) -> aiosqlite.Cursor:
        try:
            return await self.raw.execute(sql, tuple(params))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise Duplicate(str(exc)) from None
            raise


class InlineSqliteConn:
    """The same seam, but each statement runs right here on the event loop's thread, on the
    sqlite3 connection aiosqlite's thread also uses (opened with `check_same_thread=False`).

    A statement of a write transaction is a few microseconds of SQLite work; handing it to
    aiosqlite's thread and back costs two thread switches (~120 µs idle, far more on a busy
    machine) and was most of what an applied event cost (issue 15). Safe because the
    Database lock is held for the whole transaction and every statement sent to aiosqlite's
    thread (BEGIN, which may wait out another process's lock, and COMMIT, which fsyncs) has
    finished before the next inline one starts: the connection is never used by two threads
    at once. Only `Database.transaction` hands this out; reads (`reading()`, which serve
    long reports too) stay on the thread.
    """

    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        return self.raw.execute(sql, tuple(params)).fetchall()

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        rows = self.raw.execute(sql, tuple(params)).fetchall()  # the statement is done after
        return next(iter(rows), None)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._write(sql, params).rowcount

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        cursor = self._write(sql, params)
        if not cursor.rowcount:
            return None
        return cursor.lastrowid

    def _write(self, sql: str, params: Params) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, tuple(params))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise Duplicate(str(exc)) from None
            raise


class PeekConn:
    """A read-only sqlite3 connection used on the event loop itself, without aiosqlite's
    thread: for short indexed lookups (an API key, a license), where the two trips to the
    database thread per statement cost far more than the statement. Writes are refused."""

    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        return self.raw.execute(sql, tuple(params)).fetchall()

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        return self.raw.execute(sql, tuple(params)).fetchone()

    async def execute(self, sql: str, params: Params = ()) -> int:
        raise sqlite3.OperationalError("a peek is read-only; write in store.transaction()")

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        raise sqlite3.OperationalError("a peek is read-only; write in store.transaction()")


@lru_cache(maxsize=2048)
def numbered(sql: str) -> str:
    """`?` placeholders → `$1`, `$2`, … (PostgreSQL's), leaving `?` inside string literals,
    quoted identifiers and comments alone."""
    out: list[str] = []
    number = 0
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:  # '' or "" escapes the quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif char == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif char == "?":
            number += 1
            out.append(f"${number}")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
