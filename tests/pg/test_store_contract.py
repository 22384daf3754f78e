"""The store contract on both backends: every test here runs on SQLite and on PostgreSQL
(the `store` fixture, tests/pg/conftest.py), through the same repositories."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FrozenClock
from bot.store import DatabaseTooNew, Duplicate, Store
from bot.store.db import _migrations

DISCORD_ID = 1_234_567_890_123_456_789  # 64-bit, past any 32-bit column


async def add_product(store: Store, name: str = "Gold", guild_id: int = 1, **extra: object) -> int:
    async with store.transaction() as tx:
        product = await tx.products.add(
            guild_id=guild_id, name=name, price_amount=100, currency="usd", kind="one_time",
            **extra,
        )  # fmt: skip
    return product.id


async def test_both_backends_migrate_to_the_same_version(store: Store) -> None:
    latest = _migrations()[-1][0]
    assert await store.db.migrate() == latest
    assert await store.db.migrate() == latest  # nothing pending: a no-op


async def test_event_and_job_dedupe_on_both_backends(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.events.insert("evt_1", "x", 1, "{}") is True
        assert await tx.events.insert("evt_1", "x", 1, "{}") is False
        first = await tx.jobs.enqueue(guild_id=1, user_id=2, kind="grant_role", dedupe_key="k")
        again = await tx.jobs.enqueue(guild_id=1, user_id=2, kind="grant_role", dedupe_key="k")
    assert first is not None
    assert again is None
    async with store.reading() as tx:
        assert await tx.events.count() == 1
        assert [job.id for job in await tx.jobs.due()] == [first]


async def test_failed_transaction_writes_nothing_on_both_backends(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.products.add(
                guild_id=1, name="Gold", price_amount=100, currency="usd", kind="one_time"
            )
            raise RuntimeError("boom")
    async with store.reading() as tx:
        assert await tx.products.list(1) == []


async def test_duplicate_is_raised_and_the_transaction_goes_on(store: Store) -> None:
    """A unique violation fails only its statement (as SQLite does): fulfilment retries a
    colliding claim code in the same transaction, so PostgreSQL must not abort it."""
    async with store.transaction() as tx:
        await tx.products.add(
            guild_id=1, name="Gold", price_amount=1, currency="usd", kind="one_time"
        )
        with pytest.raises(Duplicate):
            await tx.products.add(
                guild_id=1, name="gold", price_amount=1, currency="usd", kind="one_time"
            )
        await tx.products.add(
            guild_id=1, name="Silver", price_amount=1, currency="usd", kind="one_time"
        )
    async with store.reading() as tx:
        assert [p.name for p in await tx.products.list(1)] == ["Gold", "Silver"]


async def test_savepoint_rolls_back_only_its_block(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.events.insert("evt_kept", "x", 1, "{}")
        with pytest.raises(KeyError):
            async with tx.savepoint():
                await tx.events.insert("evt_undone", "x", 2, "{}")
                raise KeyError("handler failed")
        async with tx.savepoint():
            await tx.events.insert("evt_after", "x", 3, "{}")
    async with store.reading() as tx:
        assert await tx.events.get("evt_kept") is not None
        assert await tx.events.get("evt_undone") is None
        assert await tx.events.get("evt_after") is not None


async def test_discord_ids_and_flags_round_trip(store: Store) -> None:
    product_id = await add_product(store, guild_id=DISCORD_ID, active=False)
    async with store.transaction() as tx:
        action = await tx.products.add_action(
            product_id, type="grant_role", stage="on_purchase", role_id=DISCORD_ID + 1
        )
        order = await tx.orders.create(
            guild_id=DISCORD_ID, buyer_id=DISCORD_ID + 2, recipient_id=DISCORD_ID + 2,
            product_id=product_id, amount=499, currency="usd",
        )  # fmt: skip
    async with store.reading() as tx:
        product = await tx.products.get(product_id)
        assert product is not None
        assert (product.guild_id, product.active, product.archived) == (DISCORD_ID, False, False)
        assert [a.role_id for a in await tx.products.role_actions_of_guild(DISCORD_ID)] == [
            action.role_id
        ]
        assert [o.id for o in await tx.orders.of_member(DISCORD_ID, DISCORD_ID + 2)] == [order.id]


async def test_json_helpers_match_on_both_backends(store: Store) -> None:
    """json_extract / json_each (SQLite built-ins, PostgreSQL functions of migration 0001)
    select the same rows: job stages and role ids, audit rows by order, member lists."""
    product_id = await add_product(store)
    async with store.transaction() as tx:
        action = await tx.products.add_action(
            product_id, type="grant_role", stage="on_purchase", role_id=DISCORD_ID
        )
        order = await tx.orders.create(
            guild_id=1, buyer_id=DISCORD_ID, recipient_id=DISCORD_ID, product_id=product_id,
            amount=100, currency="usd",
        )  # fmt: skip
        ent = await tx.entitlements.create(
            guild_id=1, user_id=DISCORD_ID, product_id=product_id, order_id=order.id, ends_at=None
        )
        for stage in ("on_purchase", "on_expire"):
            await tx.jobs.enqueue(
                guild_id=1, user_id=DISCORD_ID, kind="grant_role", entitlement_id=ent.id,
                dedupe_key=f"k:{stage}", payload={"stage": stage, "role_id": DISCORD_ID},
            )  # fmt: skip
        await tx.audit.add("order.paid", guild_id=1, order_id=order.id, event_id="evt_9")
        await tx.audit.add("order.paid", guild_id=1, order_id=order.id + 1, event_id="evt_8")
        await tx.events.insert("evt_9", "checkout.session.completed", 1, "{}")
    async with store.transaction() as tx:
        canceled = await tx.jobs.cancel_pending_of_entitlement(
            ent.id, stages=("on_expire",), kinds=("grant_role",), reason="test"
        )
        assert canceled == 1
        assert await tx.roles.queued(1) == {(DISCORD_ID, DISCORD_ID, "grant_role")}
        wanted = await tx.roles.wanted(1, [DISCORD_ID, 7])
        assert [(w.user_id, w.role_id, w.action_id) for w in wanted] == [
            (DISCORD_ID, DISCORD_ID, action.id)
        ]
        entry = await tx.audit.latest_of_order("order.paid", order.id)
        assert entry is not None and entry.detail["event_id"] == "evt_9"
        events = await tx.stats.order_events([order.id])
        assert [(e.order_id, e.event_id) for e in events] == [(order.id, "evt_9")]
        assert await tx.events.status_counts(["evt_9", "evt_missing"]) == {"received": 1}


async def test_sums_and_counts_are_integers(store: Store) -> None:
    """PostgreSQL's SUM of BIGINT is NUMERIC; the seam gives ints as SQLite does."""
    product_id = await add_product(store)
    async with store.transaction() as tx:
        for _ in range(2):
            order = await tx.orders.create(
                guild_id=1, buyer_id=2, recipient_id=2, product_id=product_id, amount=250,
                currency="usd",
            )  # fmt: skip
            await tx.orders.update(order.id, status="paid", paid_at=tx.now)
    async with store.reading() as tx:
        rows = await tx.stats.period(1, None, ("grant_role",))
    assert [(t.product, t.amount) for t in rows.takings] == [("Gold", 500)]
    assert all(type(t.amount) is int for t in rows.takings)
    assert rows.sold == {product_id: 2}


async def test_times_compare_as_instants(store: Store) -> None:
    """ISO text times order the same on both (COLLATE "C" on PostgreSQL)."""
    clock = store.clock
    assert isinstance(clock, FrozenClock)
    async with store.transaction() as tx:
        later = await tx.jobs.enqueue(
            guild_id=1, user_id=2, kind="grant_role", due_at=tx.now + timedelta(seconds=1)
        )
        now = await tx.jobs.enqueue(guild_id=1, user_id=3, kind="grant_role")
    async with store.reading() as tx:
        assert [job.id for job in await tx.jobs.due()] == [now]
    clock.advance(seconds=1)
    async with store.reading() as tx:
        assert [job.id for job in await tx.jobs.due()] == [later, now]  # by id


async def test_writers_of_two_stores_are_serialised(store: Store, tmp_path: Path) -> None:
    """Two processes (two Store objects) on one database: a write transaction does not
    start while another is open (SQLite's BEGIN IMMEDIATE; PostgreSQL's writer lock), so
    the services' read-check-write code never interleaves: here both read the stock and
    take it only if they saw one left, and exactly one gets it."""
    product_id = await add_product(store, stock=1)
    url = store.db.url if store.dialect == "postgresql" else ""  # type: ignore[union-attr]
    other = Store(tmp_path / "shop.db", FrozenClock(), url=url)
    await other.open()
    first_in, second_in = asyncio.Event(), asyncio.Event()

    async def first() -> bool:
        async with store.transaction() as tx:
            left = await tx.products.units_left(product_id)
            first_in.set()
            with pytest.raises(TimeoutError):  # the other writer waits for this one
                await asyncio.wait_for(second_in.wait(), 0.3)
            return bool(left) and await tx.products.take_stock(product_id)

    async def second() -> bool:
        await first_in.wait()
        async with other.transaction() as tx:
            second_in.set()
            left = await tx.products.units_left(product_id)
            return bool(left) and await tx.products.take_stock(product_id)

    try:
        results = await asyncio.wait_for(asyncio.gather(first(), second()), 10)
    finally:
        await other.close()
    assert results == [True, False]
    async with store.reading() as tx:
        assert await tx.products.units_left(product_id) == 0


async def test_newer_database_is_refused_on_both_backends(store: Store, tmp_path: Path) -> None:
    async with store.transaction() as tx:
        if store.dialect == "postgresql":
            await tx.conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'x', '')"
            )
    if store.dialect == "sqlite":
        async with store.db._lock.hold():  # type: ignore[union-attr]
            await store.db.conn.execute("PRAGMA user_version = 999")  # type: ignore[union-attr]
    url = store.db.url if store.dialect == "postgresql" else ""  # type: ignore[union-attr]
    again = Store(tmp_path / "shop.db", FrozenClock(), url=url)
    with pytest.raises(DatabaseTooNew, match="999"):
        await again.open()
    await again.close()


async def test_task_cancelled_inside_a_transaction_leaves_the_store_usable(store: Store) -> None:
    """A task cancelled at any await of reading()/transaction() never leaves a transaction
    open (on PostgreSQL: never returns a connection mid-transaction to the pool)."""
    broken = []
    for opener in (store.reading, store.transaction):
        for steps in range(8):  # cancel at the 1st, 2nd, … scheduling step

            async def use(opener: Any = opener) -> None:
                async with opener() as tx:
                    await tx.jobs.counts()
                    await tx.events.count()

            task = asyncio.create_task(use())
            for _ in range(steps + 1):
                await asyncio.sleep(0)  # one scheduling step, not a timed wait
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            key = f"{opener.__name__}:{steps}"
            try:
                async with asyncio.timeout(10), store.transaction() as tx:
                    await tx.set_meta(key, "x")
            except Exception as exc:
                broken.append(f"{key}: {type(exc).__name__}: {exc}")
    assert not broken, "\n".join(broken)
    async with store.reading() as tx:
        assert [await tx.get_meta(f"transaction:{n}") for n in range(8)] == ["x"] * 8


async def test_jobs_queued_by_one_process_wake_another_and_listen_survives_a_lost_connection(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    """LISTEN/NOTIFY (issue 16): a commit that queues jobs wakes every process listening
    (a rolled-back one leaves no job behind); when the server ends the LISTEN connection, listening
    raises (its supervisor starts it again) and, started again, it wakes at once for what
    was queued meanwhile. SQLite serves one process: listening returns at once."""
    if store.dialect == "sqlite":
        await asyncio.wait_for(store.listen_for_jobs(lambda: None), 1)
        return
    other = Store(tmp_path / "unused.db", FrozenClock(), url=database_url)  # a second process
    await other.open()
    woken = asyncio.Event()
    listening = asyncio.create_task(other.listen_for_jobs(woken.set))
    try:
        await asyncio.wait_for(woken.wait(), 10)  # once at the start: catch up
        woken.clear()
        with contextlib.suppress(RuntimeError):
            async with store.transaction() as tx:
                await tx.jobs.enqueue(guild_id=7, user_id=1, kind="receipt", dedupe_key="gone")
                raise RuntimeError("rolled back")
        async with store.transaction() as tx:
            await tx.set_meta("no", "jobs")
        async with store.transaction() as tx:
            await tx.jobs.enqueue(guild_id=7, user_id=1, kind="receipt", dedupe_key="kept")
        await asyncio.wait_for(woken.wait(), 10)
        async with store.reading() as tx:
            assert [job.dedupe_key for job in await tx.jobs.due()] == ["kept"]
        woken.clear()
        async with store.transaction() as tx:
            ended = await tx.conn.fetch_all(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
        assert len(ended) == 1
        with pytest.raises(ConnectionError, match="LISTEN connection"):
            await asyncio.wait_for(listening, 15)
        listening = asyncio.create_task(other.listen_for_jobs(woken.set))
        await asyncio.wait_for(woken.wait(), 10)
        woken.clear()
        async with store.transaction() as tx:
            await tx.jobs.enqueue(guild_id=7, user_id=2, kind="receipt", dedupe_key="again")
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await listening
        await other.close()
