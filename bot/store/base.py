"""Shared helpers for repositories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.clock import iso
from bot.store.conn import Conn, Duplicate, Params

__all__ = ["Duplicate", "Repo", "opt_iso"]


class Repo:
    """A repository bound to one connection (bot/store/conn.py) and the transaction's `now`.

    SQL goes only through these helpers, in the subset SQLite and PostgreSQL share: `?`
    placeholders, `ON CONFLICT … DO NOTHING/DO UPDATE`, no rowid, times as ISO text passed
    from Python, `json_extract(text, '$.a.b')` / `json_each(text)` (PostgreSQL gets both
    from its migration 0001, returning text: CAST where a number is compared).
    """

    def __init__(self, conn: Conn, now: datetime, now_iso: str | None = None) -> None:
        self.conn = conn
        self.now = now
        #: `now` as stored; a Tx formats it once for all its repositories
        self.now_iso = iso(now) if now_iso is None else now_iso

    async def _one(self, sql: str, params: Params = ()) -> Any | None:
        return await self.conn.fetch_one(sql, params)

    async def _all(self, sql: str, params: Params = ()) -> list[Any]:
        return await self.conn.fetch_all(sql, params)

    async def _insert(self, sql: str, params: Params) -> int:
        """Run an INSERT into a table with an `id`; return the new id. Raises Duplicate for a
        taken unique value."""
        new_id = await self.conn.insert(sql, params)
        assert new_id is not None, "a plain INSERT always adds its row"
        return new_id

    async def _insert_new(self, sql: str, params: Params) -> int | None:
        """An INSERT … ON CONFLICT DO NOTHING into a table with an `id`: the new id, or None
        when the row was already there."""
        return await self.conn.insert(sql, params)

    async def _changed(self, sql: str, params: Params = ()) -> int:
        """Run an UPDATE/DELETE (or an INSERT with no id wanted); how many rows it changed.
        Raises Duplicate."""
        return await self.conn.execute(sql, params)


def opt_iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)
