"""The delivery worker's loop (bot/delivery.py) without a subprocess: recovery after a crash,
waiting for members, retries with backoff, and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from bot.errors import TransientFailure
from bot.sharding import Shards, shard_for_guild
from bot.store.queue import LEASE
from tests.unit.world import BUYER, GUILD, ROLE, World, add_product, buy


@contextlib.asynccontextmanager
async def running(world: World) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(world.worker.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a condition (the worker runs in this loop; no fixed sleeps)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def outcomes(world: World) -> list[str]:
    """Finished attempts, oldest first (an attempt in flight has no outcome yet)."""
    rows = world.rows("SELECT outcome FROM job_attempts WHERE outcome IS NOT NULL ORDER BY id")
    return [outcome for (outcome,) in rows]


def statuses(world: World) -> list[tuple[str, str]]:
    return world.rows("SELECT kind, status FROM delivery_jobs ORDER BY id")


async def test_jobs_a_crash_left_running_are_done_at_start(world: World) -> None:
    await add_product(world, "Gold")
    await buy(world, "gold")
    async with world.store.transaction() as tx:
        (job,) = await tx.jobs.due()
        assert await tx.jobs.start(job.id, "dead-process") is not None  # it died here
    # The process runs its guilds alone (the SQLite file, or its shard leases), so the job
    # runs again at once, without waiting for the dead holder's lease.
    async with running(world):
        await until(
            lambda: statuses(world) == [("grant_role", "completed"), ("receipt", "completed")]
        )
    assert world.discord.roles[BUYER] == {ROLE}
    assert [user for user, _ in world.discord.dms] == [BUYER]


async def test_a_member_who_left_is_waited_for_then_served_on_join(world: World) -> None:
    await add_product(world, "Gold")
    world.discord.absent.add(BUYER)
    async with running(world):
        await buy(world, "gold")
        await until(lambda: world.rows("SELECT waiting_for_member FROM delivery_jobs") == [(1,)])
        world.discord.absent.discard(BUYER)
        await world.members.member_joined(GUILD, BUYER, pending=False)  # commit wakes the worker
        await until(lambda: ("grant_role", "completed") in statuses(world))
    assert world.discord.roles[BUYER] == {ROLE}


async def test_transient_failures_are_retried_with_backoff(world: World) -> None:
    await add_product(world, "Gold")
    failures = iter([TransientFailure("Discord error 503"), TransientFailure("rate limited", 7)])
    real_add = world.discord.add_role

    async def flaky(*args: Any, **kwargs: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        await real_add(*args, **kwargs)

    world.discord.add_role = flaky  # type: ignore[method-assign]
    async with running(world):
        await buy(world, "gold")
        await until(lambda: outcomes(world) == ["retry"])
        ((first,),) = world.rows("SELECT next_attempt_at FROM delivery_jobs")
        world.advance(seconds=3)  # past the jittered 2 s backoff
        world.worker.wake()
        await until(lambda: outcomes(world) == ["retry", "retry"])
        ((second,),) = world.rows("SELECT next_attempt_at FROM delivery_jobs")
        world.advance(seconds=8)  # Discord asked for 7 s
        world.worker.wake()
        await until(lambda: ("grant_role", "completed") in statuses(world))
    assert first < second
    assert outcomes(world)[:3] == ["retry", "retry", "completed"]
    assert world.discord.roles[BUYER] == {ROLE}


async def test_after_shutdown_begins_no_new_job_is_taken(world: World) -> None:
    await add_product(world, "Gold")
    async with running(world):
        await world.worker.finish_in_flight(grace=1)
        await buy(world, "gold")
        world.worker.wake()
        await until(lambda: not world.worker._wake.is_set())  # the loop looked again
        await until(lambda: not world.worker._guild_tasks)
    assert statuses(world) == [("grant_role", "pending")]


async def test_a_dead_holders_job_is_claimed_after_its_lease_and_the_old_holder_cannot_record_it(
    world: World,
) -> None:
    """Leases with fencing (issue 16): a running job is its holder's until the lease ends
    (renewed while it runs); then another process claims it under a new fencing token, and
    the first holder's late answer changes nothing but its own attempt row."""
    await add_product(world, "Gold")
    await buy(world, "gold")
    async with world.store.transaction() as tx:
        (job,) = [j for j in await tx.jobs.due() if j.kind == "grant_role"]
        first = await tx.jobs.start(job.id, "process-a")
        assert first is not None
        assert await tx.jobs.start(job.id, "process-b") is None  # a's lease holds
    world.advance(seconds=LEASE.total_seconds() * 0.8)
    async with world.store.transaction() as tx:
        assert await tx.jobs.renew("process-a") == 1
    world.advance(seconds=LEASE.total_seconds() * 0.8)  # past the first lease, not the renewed
    async with world.store.transaction() as tx:
        assert job.id not in [j.id for j in await tx.jobs.due()]
        assert await tx.jobs.start(job.id, "process-b") is None
    world.advance(seconds=LEASE.total_seconds())  # a stopped renewing: it died
    async with world.store.transaction() as tx:
        assert job.id in [j.id for j in await tx.jobs.due()]
        second = await tx.jobs.start(job.id, "process-b")
        assert second is not None and second.fencing == first.fencing + 1
        late = await tx.jobs.finish(
            job.id, first.attempt_id, status="completed", outcome="completed", fencing=first.fencing
        )
        assert late is False
        assert (await tx.jobs.get(job.id)).status == "running"  # type: ignore[union-attr]
        done = await tx.jobs.finish(
            job.id,
            second.attempt_id,
            status="completed",
            outcome="completed",
            fencing=second.fencing,
        )
        assert done is True
    attempts = world.rows(f"SELECT outcome FROM job_attempts WHERE job_id={job.id} ORDER BY id")
    assert attempts == [("superseded",), ("completed",)]  # a's late answer, then b's
    assert world.rows(f"SELECT status FROM delivery_jobs WHERE id={job.id}") == [("completed",)]


async def test_a_process_runs_only_the_jobs_of_guilds_on_its_shards(world: World) -> None:
    """SPEC §9: the worker claims only jobs of guilds on its shards; the rest wait for the
    process that owns them."""
    await add_product(world, "Gold")
    await buy(world, "gold")
    mine = Shards(count=2, ids=(shard_for_guild(GUILD, 2),))
    theirs = Shards(count=2, ids=(1 - mine.ids[0],))
    other_guild = GUILD + (1 << 22)  # the next shard over: on `theirs`
    assert theirs.owns(other_guild)
    async with world.store.transaction() as tx:
        other = await tx.jobs.enqueue(
            guild_id=other_guild, user_id=BUYER, kind="grant_role", payload={"role_id": ROLE}
        )
    world.worker.shards = theirs
    async with running(world):
        await until(
            lambda: (
                world.rows(f"SELECT status FROM delivery_jobs WHERE id={other}") == [("failed",)]
            )
        )
    assert ("grant_role", "pending") in statuses(world)  # GUILD's job: not this process's
    world.worker.shards = mine
    async with running(world):
        await until(lambda: ("grant_role", "completed") in statuses(world))
    assert world.discord.roles[BUYER] == {ROLE}
