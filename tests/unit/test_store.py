"""Storage: migrations, refusing newer databases, and unique constraints doing dedupe."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.store import DatabaseTooNew, Duplicate, Store
from bot.store.db import _migrations


async def open_store(path: Path) -> Store:
    store = Store(path, FrozenClock())
    await store.open()
    return store


async def test_migrates_and_sets_pragmas(tmp_path: Path) -> None:
    """A new database gets the schema, WAL and foreign keys."""
    store = await open_store(tmp_path / "a" / "shop.db")
    try:
        async with store.reading() as tx:
            version = (await tx.conn.fetch_one("PRAGMA user_version"))[0]
            mode = (await tx.conn.fetch_one("PRAGMA journal_mode"))[0]
            fks = (await tx.conn.fetch_one("PRAGMA foreign_keys"))[0]
        assert version >= 1
        assert mode == "wal"
        assert fks == 1
    finally:
        await store.close()


async def test_refuses_newer_database(tmp_path: Path) -> None:
    """A database from a newer shopbot is refused instead of being misread."""
    path = tmp_path / "shop.db"
    await (await open_store(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    store = Store(path, FrozenClock())
    with pytest.raises(DatabaseTooNew, match="999"):
        await store.open()
    await store.close()


async def test_event_and_job_dedupe(tmp_path: Path) -> None:
    """The same event id and the same job dedupe key are stored only once."""
    store = await open_store(tmp_path / "shop.db")
    try:
        async with store.transaction() as tx:
            assert await tx.events.insert("evt_1", "x", 1, "{}") is True
            assert await tx.events.insert("evt_1", "x", 1, "{}") is False
            first = await tx.jobs.enqueue(guild_id=1, user_id=2, kind="grant_role", dedupe_key="k")
            again = await tx.jobs.enqueue(guild_id=1, user_id=2, kind="grant_role", dedupe_key="k")
        assert first is not None
        assert again is None
        async with store.reading() as tx:
            assert await tx.events.count() == 1
            assert len(await tx.jobs.due()) == 1
    finally:
        await store.close()


async def test_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    """An exception inside a transaction rolls every statement back."""
    store = await open_store(tmp_path / "shop.db")
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.products.add(
                    guild_id=1, name="Gold", price_amount=100, currency="usd", kind="one_time"
                )
                raise RuntimeError("boom")
        async with store.reading() as tx:
            assert await tx.products.list(1) == []
    finally:
        await store.close()


async def test_duplicate_live_name_rejected_but_archived_frees_it(tmp_path: Path) -> None:
    """Names are unique per guild among live products; archiving frees the name."""
    store = await open_store(tmp_path / "shop.db")
    try:
        async with store.transaction() as tx:
            product = await tx.products.add(
                guild_id=1, name="Gold", price_amount=1, currency="usd", kind="one_time"
            )
        with pytest.raises(Duplicate):
            async with store.transaction() as tx:
                await tx.products.add(
                    guild_id=1, name="gold", price_amount=1, currency="usd", kind="one_time"
                )
        async with store.transaction() as tx:
            await tx.products.archive(product.id)
            await tx.products.add(
                guild_id=1, name="GOLD", price_amount=1, currency="usd", kind="one_time"
            )
    finally:
        await store.close()


async def test_cancellation_during_rollback_is_passed_on_not_swallowed(tmp_path: Path) -> None:
    """Issue 9 item 15: a loop cancelled while its read transaction rolled back carried on
    (the shielded ROLLBACK suppressed the CancelledError), so shutdown waited on it."""
    store = await open_store(tmp_path / "shop.db")
    leaving = asyncio.Event()

    async def reader() -> None:
        while True:
            async with store.reading() as tx:
                await tx.jobs.counts()
                leaving.set()  # no await until the ROLLBACK: the cancel lands during it

    try:
        task = asyncio.create_task(reader())
        await leaving.wait()
        task.cancel()
        finished, _ = await asyncio.wait([task], timeout=2)
        assert finished and task.cancelled(), "the cancellation was swallowed"
    finally:
        await store.close()


async def test_sql_from_keyword_names_is_whitelisted(tmp_path: Path) -> None:
    """Issue 9 item 12: column lists built from **kwargs accept known columns only."""
    store = await open_store(tmp_path / "shop.db")
    try:
        async with store.transaction() as tx:
            product = await tx.products.add(
                guild_id=1, name="Gold", price_amount=1, currency="usd", kind="one_time"
            )
            injected = {"name) VALUES ('x'); DROP TABLE orders; --": 1}
            with pytest.raises(ValueError, match="not settable"):
                await tx.products.add(guild_id=1, name="Silver", **injected)
            with pytest.raises(ValueError, match="not settable"):
                await tx.products.add_action(product.id, type="grant_role", archived=1)
            with pytest.raises(ValueError, match="not editable"):
                await tx.products.update(product.id, guild_id=2)
            with pytest.raises(ValueError, match="not updatable"):
                await tx.orders.update(1, buyer_id=5)
        async with store.reading() as tx:
            assert [p.name for p in await tx.products.list(1)] == ["Gold"]
    finally:
        await store.close()


def test_every_sqlite_migration_has_a_postgresql_twin() -> None:
    """A migration added for SQLite only would leave PostgreSQL databases behind: each
    bot/store/migrations/NNNN_name.sql needs bot/store/migrations_pg/NNNN_name.sql."""
    sqlite = [(number, name) for number, name, _ in _migrations("bot.store.migrations")]
    postgresql = [(number, name) for number, name, _ in _migrations("bot.store.migrations_pg")]
    assert sqlite == postgresql
    assert [number for number, _ in sqlite] == list(range(1, len(sqlite) + 1))


async def test_peek_reads_committed_rows_while_a_write_transaction_is_open(tmp_path: Path) -> None:
    """A peek answers from the last commit without waiting for the writer's lock, and
    refuses to write (it is for lookups on hot paths: API keys, license checks)."""
    store = await open_store(tmp_path / "shop.db")
    try:
        async with store.transaction() as tx:
            await tx.set_meta("colour", "blue")
        held, release = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.set_meta("colour", "green")
                held.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await asyncio.wait_for(held.wait(), 5)
        async with asyncio.timeout(5):  # the writer holds the lock until we let it go
            async with store.peek() as tx:
                assert await tx.get_meta("colour") == "blue"  # not the uncommitted green
                with pytest.raises(sqlite3.OperationalError, match="read-only"):
                    await tx.set_meta("colour", "red")
        release.set()
        await task
        async with store.peek() as tx:
            assert await tx.get_meta("colour") == "green"
    finally:
        await store.close()
