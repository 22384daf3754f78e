"""Shared helpers for repositories."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from bot.clock import iso
from bot.store.conn import Conn, Duplicate, Params

__all__ = ["Duplicate", "ReadCache", "Repo", "opt_iso"]

T = TypeVar("T")

#: Reads one transaction keeps (see `Repo._cached`), shared by its repositories.
ReadCache = dict[tuple[Any, ...], Any]


class Repo:
    """A repository bound to one connection (bot/store/conn.py) and the transaction's `now`.

    SQL goes only through these helpers, in the subset SQLite and PostgreSQL share: `?`
    placeholders, `ON CONFLICT … DO NOTHING/DO UPDATE`, no rowid, times as ISO text passed
    from Python, `json_extract(text, '$.a.b')` / `json_each(text)` (PostgreSQL gets both
    from its migration 0001, returning text: CAST where a number is compared).
    """

    #: Whether this repository keeps some of its reads for the rest of the transaction
    #: (`_cached`): shop configuration that many events in one inbox batch read again
    #: (product, actions, locale, log channel, webhook endpoints). Any write through such a
    #: repository forgets every kept read, and so does a rolled back savepoint.
    caches_reads = False

    def __init__(self, conn: Conn, now: datetime, cache: ReadCache | None = None) -> None:
        self.conn = conn
        self.now = now
        self.now_iso = _now_iso(now)
        self._cache: ReadCache = {} if cache is None else cache

    async def _cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        """`load()`'s answer, read once per transaction (values must be immutable)."""
        try:
            value: T = self._cache[key]
        except KeyError:
            value = self._cache[key] = await load()
        return value

    def _wrote(self) -> None:
        if self.caches_reads:
            self._cache.clear()

    async def _one(self, sql: str, params: Params = ()) -> Any | None:
        return await self.conn.fetch_one(sql, params)

    async def _all(self, sql: str, params: Params = ()) -> list[Any]:
        return await self.conn.fetch_all(sql, params)

    async def _insert(self, sql: str, params: Params) -> int:
        """Run an INSERT into a table with an `id`; return the new id. Raises Duplicate for a
        taken unique value."""
        self._wrote()
        new_id = await self.conn.insert(sql, params)
        assert new_id is not None, "a plain INSERT always adds its row"
        return new_id

    async def _insert_new(self, sql: str, params: Params) -> int | None:
        """An INSERT … ON CONFLICT DO NOTHING into a table with an `id`: the new id, or None
        when the row was already there."""
        self._wrote()
        return await self.conn.insert(sql, params)

    async def _changed(self, sql: str, params: Params = ()) -> int:
        """Run an UPDATE/DELETE (or an INSERT with no id wanted); how many rows it changed.
        Raises Duplicate."""
        self._wrote()
        return await self.conn.execute(sql, params)


@functools.lru_cache(maxsize=16)
def _now_iso(now: datetime) -> str:
    """`iso(now)`, once per transaction rather than once per repository (a Tx has 20)."""
    return iso(now)


def opt_iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)
