"""Several processes, one bot token: Discord's IDENTIFY limit and once-per-fleet work.

IDENTIFY (FACTS.md): one per `max_concurrency` bucket (`shard_id % max_concurrency`) per
5 seconds per token, whichever process sends it. `IdentifyGate.wait_turn` runs in
discord.py's `before_identify_hook`: in one short transaction it reserves the bucket's next
slot in `identify_slots` (5 s plus a margin after the slot reserved before it, by any
process; on PostgreSQL under the bucket's advisory lock), then sleeps until that slot
outside any transaction. The margin covers the time between our hook returning and
Discord receiving the IDENTIFY, which differs between processes.

Periodic work that must run once per fleet (expiry, Stripe catch-up, Discord entitlement
reconcile) runs only while this process holds the `fleet_leases` row (`FleetLease`):
renewed every `renew_every`, it expires `ttl` after the last renewal, so the work moves
to another process within `ttl` of its holder dying; every takeover grows its fencing
token. On SQLite there is one process (the file is held exclusively), so it always holds.
Role reconciliation is per guild and follows shard ownership instead: each process
reconciles the guilds its shards receive (bot/app.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.store import Store

log = logging.getLogger(__name__)

#: Discord's rule: one IDENTIFY per bucket per 5 s.
IDENTIFY_SPACING = timedelta(seconds=5)
#: Added to it: our IDENTIFY reaches Discord a little after the hook returns, and not
#: equally soon from every process.
IDENTIFY_MARGIN = timedelta(milliseconds=500)

Sleep = Callable[[float], Awaitable[None]]


class IdentifyGate:
    """Spaces IDENTIFYs per bucket across every process sharing the database."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        max_concurrency: int = 1,
        spacing: timedelta = IDENTIFY_SPACING + IDENTIFY_MARGIN,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_concurrency = max_concurrency
        self.spacing = spacing
        self.sleep = sleep

    def bucket(self, shard_id: int) -> int:
        return shard_id % max(1, self.max_concurrency)

    async def wait_turn(self, shard_id: int) -> float:
        """Reserve the shard's bucket's next IDENTIFY slot and sleep until it; the seconds
        waited."""
        bucket = self.bucket(shard_id)
        async with self.store.transaction() as tx:
            slot = await tx.fleet.reserve_identify(bucket, self.clock.now(), self.spacing)
        wait = (slot - self.clock.now()).total_seconds()
        if wait > 0:
            log.info(
                "shard %d waits %.1f s for its IDENTIFY turn (bucket %d of %d)",
                shard_id, wait, bucket, self.max_concurrency,
            )  # fmt: skip
            await self.sleep(wait)
        return max(wait, 0.0)


def holder_name() -> str:
    """This process, as a lease holder: host, pid and a random tag (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class FleetLease:
    """Holds (or waits for) the lease `name`; `while_held` runs work only meanwhile."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        name: str = "periodic",
        holder: str | None = None,
        ttl: timedelta = timedelta(seconds=45),
        renew_every: float = 15.0,
        always: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.clock = clock
        self.name = name
        self.holder = holder or holder_name()
        self.ttl = ttl
        self.renew_every = renew_every
        #: SQLite: one process serves the database, so it always holds the lease.
        self.always = always
        self.sleep = sleep
        self.fencing: int | None = 1 if always else None
        self._until = clock.now() + ttl if always else None
        self._changed = asyncio.Event()
        self._told_waiting = False

    @property
    def held(self) -> bool:
        if self.always:
            return True
        return (
            self.fencing is not None and self._until is not None and self.clock.now() < self._until
        )

    async def renew(self) -> bool:
        """One try to take or renew the lease; whether this process holds it now."""
        if self.always:
            return True
        before = self.fencing
        started = self.clock.now()
        try:
            async with self.store.transaction() as tx:
                fencing = await tx.fleet.hold_lease(self.name, self.holder, self.ttl)
        except Exception:
            log.warning("renewing the %s lease failed; trying again", self.name, exc_info=True)
            fencing = self.fencing if self.held else None
        else:
            self._until = started + self.ttl if fencing is not None else None
        self.fencing = fencing
        if fencing != before:
            if fencing is not None:
                log.info(
                    "this process (%s) now holds the %s lease (fencing %d): it runs the "
                    "fleet's periodic work", self.holder, self.name, fencing,
                )  # fmt: skip
            elif before is not None:
                log.warning("this process lost the %s lease; its periodic work stops", self.name)
            self._notify()
        if fencing is None and not self._told_waiting:
            self._told_waiting = True
            log.info(
                "another process holds the %s lease; this one (%s) takes it over if it "
                "stops renewing", self.name, self.holder,
            )  # fmt: skip
        return fencing is not None

    async def run(self) -> None:
        """Forever: renew, then wait `renew_every` (a supervised loop of bot/app.py)."""
        if self.always:
            await asyncio.Event().wait()  # nothing to renew; never returns
        while True:
            await self.renew()
            await self.sleep(self.renew_every)
            if self.fencing is not None and not self.held:  # renewals failed past the ttl
                self.fencing = None
                log.warning("the %s lease ran out unrenewed; periodic work stops", self.name)
                self._notify()

    async def release(self) -> None:
        """At shutdown: let another process take the lease at its next try."""
        if self.always or self.fencing is None:
            return
        async with self.store.transaction() as tx:
            await tx.fleet.release_lease(self.name, self.holder)
        self.fencing = None
        self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _until_held(self, held: bool) -> None:
        while self.held != held:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_every):
                    await changed.wait()

    async def while_held(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run `factory()` while this process holds the lease: started when it is taken,
        cancelled when it is lost, started again when it is taken back. An exception of
        the work goes to the caller (its supervisor restarts it)."""
        while True:
            await self._until_held(True)
            work = asyncio.ensure_future(factory())
            lost = asyncio.ensure_future(self._until_held(False))
            try:
                await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, lost):
                    task.cancel()
                await asyncio.gather(work, lost, return_exceptions=True)
            if work.done() and not work.cancelled():
                work.result()  # raises the work's exception
                return


#: Discord's global limit: requests per second per bot token, across every process.
GLOBAL_LIMIT = 50


#: What a fleet allows itself of it: a tenth is kept back, because a request admitted in
#: one second can reach Discord in the next (the event loop or the connection pool was
#: busy) while the next second's requests go out at once.
FLEET_BUDGET = 45


def global_share(shard_ids: int, shard_count: int, budget: int = FLEET_BUDGET) -> int:
    """This process's part of the global limit, split by the shards it runs (a static
    split: with every shard range taken, the parts add up to at most `budget`)."""
    return max(1, budget * shard_ids // shard_count)


class RequestWindow:
    """At most `per_second` requests in any one-second window (a sliding window: unlike a
    token bucket, it never lets a burst and its refill land in the same second)."""

    #: A little over a second: requests reach Discord a few milliseconds apart from when
    #: they were sent, so a window of exactly one second could put a 51st in Discord's.
    WINDOW = 1.1

    def __init__(self, per_second: int, now: Callable[[], float] | None = None) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self.per_second = per_second
        self._now = now or (lambda: asyncio.get_running_loop().time())
        self._sent: collections.deque[float] = collections.deque()
        self.waited = 0  # how many requests had to wait (for logs and tests)

    def wait_for(self) -> float:
        """Seconds until a request may go (0: now); a request that may go is counted."""
        now = self._now()
        while self._sent and now - self._sent[0] >= self.WINDOW:
            self._sent.popleft()
        if len(self._sent) < self.per_second:
            self._sent.append(now)
            return 0.0
        return self._sent[0] + self.WINDOW - now

    async def take(self) -> None:
        """Wait for this request's turn."""
        delay = self.wait_for()
        if delay:
            self.waited += 1
        while delay:
            await asyncio.sleep(delay)
            delay = self.wait_for()


class ShardTaken(Exception):
    """Another live process runs one of this process's shards (the ranges overlap)."""


class ShardClaims:
    """One process per shard, fleet-wide: a lease per shard (`shard:N` in `fleet_leases`).

    A guild's jobs, its role bucket and its reconciliation have a single owner only if no
    two processes run the same shard, so a process starts only once it holds a lease on
    each of its shards. A lease left by a process that died runs out within `ttl`, so a
    restarted process waits at most that long; a lease that is still being renewed
    (another live process has the shard) stops this one with the holder's name.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        shard_ids: tuple[int, ...],
        *,
        holder: str | None = None,
        ttl: timedelta = timedelta(seconds=30),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.clock = clock
        self.names = [f"shard:{shard}" for shard in shard_ids]
        self.holder = holder or holder_name()
        self.ttl = ttl
        self.renew_every = ttl.total_seconds() / 3
        self.sleep = sleep

    async def hold(self) -> tuple[str, str] | None:
        """Take or renew every shard's lease, all or none, in one transaction; None when
        held, else (shard lease, its holder) of one another live process holds."""
        try:
            async with self.store.transaction() as tx:
                for name in self.names:
                    if await tx.fleet.hold_lease(name, self.holder, self.ttl) is None:
                        current = await tx.fleet.lease(name)
                        raise ShardTaken(name, current[0] if current else "?")
        except ShardTaken as taken:
            return taken.args[0], taken.args[1]
        return None

    async def claim(self) -> None:
        """At startup: wait until this process holds all its shards (a dead process's
        leases run out within `ttl`); ShardTaken if another process keeps renewing one."""
        waited = 0.0
        told = False
        while (conflict := await self.hold()) is not None:
            name, holder = conflict
            if waited > self.ttl.total_seconds() + self.renew_every:
                raise ShardTaken(
                    f"{name.replace(':', ' ')} is run by another process ({holder}); each "
                    "shard must be in one process's discord.shard_ids only"
                )
            if not told:
                told = True
                log.warning(
                    "%s is held by %s; waiting up to %.0f s for its lease to run out (a "
                    "process that just stopped) before giving up (one that still runs it)",
                    name.replace(":", " "), holder, self.ttl.total_seconds() + self.renew_every,
                )  # fmt: skip
            await self.sleep(1.0)
            waited += 1.0
        log.info("this process (%s) holds shards %s", self.holder, ",".join(self.names))

    async def run(self, on_lost: Callable[[], object]) -> None:
        """Forever: renew the leases (a supervised loop). Losing one (this process stalled
        past `ttl` and another took the shard over) calls `on_lost` (the bot stops)."""
        while True:
            await self.sleep(self.renew_every)
            if (conflict := await self.hold()) is not None:
                log.error(
                    "%s was taken over by %s while this process stalled; stopping so that "
                    "one process runs it", conflict[0].replace(":", " "), conflict[1],
                )  # fmt: skip
                on_lost()
                return

    async def release(self) -> None:
        """At shutdown: the shards are free for the next process at once."""
        async with self.store.transaction() as tx:
            for name in self.names:
                await tx.fleet.release_lease(name, self.holder)
