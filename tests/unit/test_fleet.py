"""Several processes over one database (bot/fleet.py): IDENTIFY turns per bucket and the
lease that runs the fleet's periodic work in one process. Two gates or leases over one
store are two processes; tests/pg runs this module on PostgreSQL too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.clock import FrozenClock, iso
from bot.fleet import (
    GLOBAL_LIMIT,
    IDENTIFY_MARGIN,
    IDENTIFY_SPACING,
    FleetLease,
    IdentifyGate,
    RequestWindow,
    ShardClaims,
    ShardTaken,
    global_share,
)
from tests.unit.world import World

TURN = (IDENTIFY_SPACING + IDENTIFY_MARGIN).total_seconds()


class Sleeps:
    """`sleep` for the code under test: moves the frozen clock instead of waiting."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds=seconds)


async def test_identify_turns_are_spaced_per_bucket_across_processes(world: World) -> None:
    """Two processes (gates) over one database, max_concurrency 2: shards 0 and 2 share
    bucket 0, so whichever asks second waits 5 s (+ margin) after the first, and a third
    of that bucket queues behind both; bucket 1 (shard 1) does not wait; after the spacing
    has passed a bucket's next IDENTIFY goes at once."""
    sleeps = Sleeps(world.clock)
    first = IdentifyGate(world.store, world.clock, max_concurrency=2, sleep=sleeps)
    second = IdentifyGate(world.store, world.clock, max_concurrency=2, sleep=sleeps)
    assert await first.wait_turn(0) == 0
    assert await second.wait_turn(1) == 0  # another bucket
    world.clock.advance(seconds=1)
    assert await second.wait_turn(2) == TURN - 1  # bucket 0: the other process's turn
    assert await first.wait_turn(4) == TURN  # queued behind shard 2's slot
    world.clock.advance(seconds=60)
    assert await second.wait_turn(6) == 0
    assert sleeps.waits == [TURN - 1, TURN]


async def test_identify_turns_of_one_bucket_never_overlap_when_asked_together(
    world: World,
) -> None:
    """Four shards of one bucket asking at the same moment get four distinct slots, each a
    full turn after the one before (the reservation is one transaction per ask)."""
    sleeps = Sleeps(world.clock)
    gates = [IdentifyGate(world.store, world.clock, sleep=sleeps) for _ in range(2)]
    start = world.clock.now()
    slots: list[timedelta] = []

    async def ask(gate: IdentifyGate, shard: int) -> None:
        async with world.store.transaction() as tx:
            slot = await tx.fleet.reserve_identify(gate.bucket(shard), start, gate.spacing)
        slots.append(slot - start)

    await asyncio.gather(*(ask(gates[i % 2], i) for i in range(4)))
    assert sorted(s.total_seconds() for s in slots) == [0, TURN, 2 * TURN, 3 * TURN]


async def test_one_process_holds_the_fleet_lease_and_another_takes_it_over(
    world: World,
) -> None:
    """The first to ask holds the lease and renews it; the other waits. When the holder
    stops renewing, the other takes it once it expired, with a larger fencing token, and
    the old holder's renewal then fails; a clean release hands it over at once."""
    ttl = timedelta(seconds=45)
    a = FleetLease(world.store, world.clock, holder="a", ttl=ttl)
    b = FleetLease(world.store, world.clock, holder="b", ttl=ttl)
    assert await a.renew() and a.fencing == 1
    assert not await b.renew() and not b.held
    world.clock.advance(seconds=30)
    assert await a.renew() and a.fencing == 1  # renewed, not taken over
    world.clock.advance(seconds=30)
    assert not await b.renew()  # a renewed 30 s ago: its lease runs 15 s more
    world.clock.advance(seconds=16)
    assert not a.held  # a's own view: past its ttl without renewing
    assert await b.renew() and b.fencing == 2
    assert not await a.renew() and a.fencing is None
    await b.release()
    assert not b.held
    assert await a.renew() and a.fencing == 3
    async with world.store.reading() as tx:
        assert await tx.fleet.lease("periodic") == ("a", 3, iso(world.clock.now() + ttl))


async def test_work_runs_only_while_the_lease_is_held(world: World) -> None:
    """`while_held` starts the work when the lease is taken and cancels it when lost."""
    lease = FleetLease(world.store, world.clock, holder="a", renew_every=0.01)
    other = FleetLease(world.store, world.clock, holder="b")
    assert await other.renew()  # b holds it first
    started: list[int] = []
    cancelled: list[int] = []

    async def work() -> None:
        started.append(1)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    runner = asyncio.create_task(lease.while_held(work))
    try:
        assert not await lease.renew()
        for _ in range(10):  # the runner gets its turns; b still holds the lease
            await asyncio.sleep(0)
        assert started == []
        await other.release()
        assert await lease.renew()
        await _until(lambda: started == [1])
        world.clock.advance(seconds=60)  # a's lease runs out unrenewed
        await _until(lambda: cancelled == [1])
        assert await lease.renew()
        await _until(lambda: started == [1, 1])
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def test_sqlite_process_always_holds_the_lease(world: World) -> None:
    """One process serves a SQLite file (it is held exclusively): no lease row is needed."""
    lease = FleetLease(world.store, world.clock, always=True)
    world.clock.advance(days=1)
    assert lease.held and lease.fencing == 1


async def _until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


def test_global_limit_shares_add_up_to_at_most_the_limit() -> None:
    """The static split: each process's part by its shards; whatever the ranges, every
    shard taken once, the parts never add up to more than Discord's 50 requests/s."""
    assert global_share(4, 16) == 11 and global_share(16, 16) == 45 < GLOBAL_LIMIT
    for ranges in ([4, 4, 4, 4], [1, 15], [3, 5, 8], [1] * 16, [2] * 8, [7, 9]):
        assert sum(global_share(n, sum(ranges)) for n in ranges) <= GLOBAL_LIMIT
    assert global_share(1, 100) == 1  # never nothing at all


def test_request_window_allows_n_per_window_and_says_how_long_to_wait() -> None:
    """A sliding window: `per_second` requests go at once, the next waits until the first
    leaves the window; never more than `per_second` in any window."""
    now = [100.0]
    window = RequestWindow(3, now=lambda: now[0])
    assert [window.wait_for() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert abs(window.wait_for() - RequestWindow.WINDOW) < 1e-9
    now[0] += 0.5
    assert abs(window.wait_for() - (RequestWindow.WINDOW - 0.5)) < 1e-9
    now[0] = 100.0 + RequestWindow.WINDOW + 0.01  # the first three have left the window
    assert [window.wait_for() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.wait_for() > 0


async def test_request_window_spaces_a_burst_over_windows() -> None:
    """30 requests through a window of 20/s: 20 go at once, the others one window later."""
    loop = asyncio.get_running_loop()
    window = RequestWindow(20)
    start = loop.time()
    sent: list[float] = []

    async def one() -> None:
        await window.take()
        sent.append(loop.time() - start)

    await asyncio.gather(*(one() for _ in range(30)))
    assert sum(at < 0.5 for at in sent) == 20
    assert min(at for at in sent if at >= 0.5) >= RequestWindow.WINDOW - 0.01
    assert window.waited == 10


async def test_two_processes_never_run_the_same_shard(world: World) -> None:
    """One process per shard fleet-wide: a process whose range overlaps a live one's waits
    out the lease and then refuses to start, naming the holder; all or none of its shards
    are taken; a clean stop frees them at once, and a dead process's run out."""
    sleeps = Sleeps(world.clock)
    a = ShardClaims(world.store, world.clock, (0, 1), holder="a", sleep=sleeps)
    b = ShardClaims(world.store, world.clock, (1, 2), holder="b", sleep=sleeps)
    await a.claim()
    assert await b.hold() == ("shard:1", "a")
    async with world.store.reading() as tx:
        assert await tx.fleet.lease("shard:2") is None  # all or none: b took nothing

    async def a_renews_meanwhile() -> None:
        while True:
            await asyncio.sleep(0)
            await a.hold()

    renewing = asyncio.create_task(a_renews_meanwhile())
    try:
        with pytest.raises(ShardTaken, match=r"shard 1 is run by another process \(a\)"):
            await b.claim()
    finally:
        renewing.cancel()
    await a.release()
    await b.claim()  # freed at a clean stop: at once
    c = ShardClaims(world.store, world.clock, (2,), holder="c", sleep=sleeps)
    await c.claim()  # b died (no renewals): its lease runs out, c waits and takes shard 2
    async with world.store.reading() as tx:
        assert (await tx.fleet.lease("shard:2"))[0] == "c"  # type: ignore[index]
