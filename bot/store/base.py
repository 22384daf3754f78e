"""Shared helpers for repositories."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import iso


class Duplicate(Exception):
    """A unique constraint refused the write (a name or code already taken); nothing changed."""


class Repo:
    """A repository bound to one connection and the transaction's `now`."""

    def __init__(self, conn: aiosqlite.Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.now_iso = iso(now)

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        rows = await self.conn.execute_fetchall(sql, params)  # one trip to the DB thread
        return next(iter(rows), None)

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        return list(await self.conn.execute_fetchall(sql, params))

    async def _insert(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run an INSERT; return the new row id. Raises Duplicate for a taken unique value."""
        cursor = await self._write(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def _changed(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run an UPDATE/DELETE; return how many rows it changed. Raises Duplicate."""
        return (await self._write(sql, params)).rowcount

    async def _write(self, sql: str, params: tuple[Any, ...]) -> aiosqlite.Cursor:
        try:
            return await self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise Duplicate(str(exc)) from None
            raise


def opt_iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)
