"""Cancellation mid-transaction (what SIGTERM does to busy background tasks) keeps the DB usable."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bot.store.db import Database


async def test_task_cancelled_around_begin_leaves_the_database_usable(tmp_path: Path) -> None:
    """A task cancelled at any await of reading()/transaction() never leaves a transaction open."""
    db = Database(tmp_path / "shop.db")
    await db.open()
    broken = []
    try:
        for opener in (db.reading, db.transaction):
            for steps in range(4):  # cancel at the 1st, 2nd, … suspension point

                async def use(opener=opener) -> None:
                    async with opener() as conn:
                        await conn.execute("SELECT 1")

                task = asyncio.create_task(use())
                for _ in range(steps + 1):
                    await asyncio.sleep(0)  # one scheduling step, not a timed wait
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                key = f"{opener.__name__}:{steps}"
                try:  # what the next task (the delivery worker, a webhook) does
                    async with db.transaction() as conn:
                        await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
                except Exception as exc:
                    broken.append(f"{key}: {type(exc).__name__}: {exc}")
                    await db.conn.execute("ROLLBACK")  # so the next case starts clean
        assert not broken, "\n".join(broken)
        async with db.reading() as conn:
            rows = await conn.fetch_one("SELECT COUNT(*) FROM meta")
        assert rows[0] == 8
    finally:
        await db.close()
