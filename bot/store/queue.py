"""The durable delivery queue: jobs and one history row per attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.clock import iso
from bot.models import Job
from bot.sharding import Shards
from bot.store.base import Repo, opt_iso

#: How long a claimed job stays its holder's before another process may claim it again
#: (the holder renews it while the job runs; bot/delivery.py).
LEASE = timedelta(seconds=60)

#: A job is due when pending and its time has come, or running past its lease (the process
#: that claimed it died); `?` twice: now.
_DUE = (
    "((status='pending' AND waiting_for_member=0 AND next_attempt_at <= ?)"
    " OR (status='running' AND lease_until IS NOT NULL AND lease_until <= ?))"
)


def on_shards(shards: Shards | None) -> tuple[str, tuple[int, ...]]:
    """SQL (` AND …`) and params keeping the jobs of guilds on these shards, Discord's
    `(guild_id >> 22) % shard_count` (both backends have `>>` and `%` on 64-bit integers)."""
    if shards is None or shards.everything:
        return "", ()
    marks = ", ".join("?" for _ in shards.ids)
    return f" AND ((guild_id >> 22) % ?) IN ({marks})", (shards.count, *shards.ids)


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this process now runs: its attempt row and the fencing token to finish it with."""

    attempt_id: int
    fencing: int


class JobRepo(Repo):
    """Delivery jobs. A job is completed only after its effect succeeded (at-least-once)."""

    #: Jobs this transaction made due (queued, retried, woken); the Store wakes the worker
    #: once the transaction commits when it is non-zero.
    queued: int = 0

    async def enqueue(
        self,
        *,
        guild_id: int,
        user_id: int,
        kind: str,
        dedupe_key: str | None = None,
        open_key: str | None = None,
        order_id: int | None = None,
        entitlement_id: int | None = None,
        action_id: int | None = None,
        payload: dict[str, Any] | None = None,
        expires_at: datetime | None = None,
        due_at: datetime | None = None,
    ) -> int | None:
        """Queue a job due now (or at `due_at`). Returns its id, or None when the unique
        indexes refuse it: `dedupe_key` was queued before, or a job with `open_key` is
        pending or running."""
        job_id = await self._insert_new(
            "INSERT INTO delivery_jobs (guild_id, user_id, kind, order_id, entitlement_id,"
            " action_id, payload, dedupe_key, open_key, status, next_attempt_at, expires_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                guild_id,
                user_id,
                kind,
                order_id,
                entitlement_id,
                action_id,
                json.dumps(payload or {}),
                dedupe_key,
                open_key,
                iso(due_at) if due_at else self.now_iso,
                opt_iso(expires_at),
                self.now_iso,
                self.now_iso,
            ),
        )
        if job_id is None:
            return None
        self.queued += 1
        return job_id

    async def get(self, job_id: int) -> Job | None:
        row = await self._one("SELECT * FROM delivery_jobs WHERE id=?", (job_id,))
        return None if row is None else Job.from_row(row)

    async def due(
        self, limit: int = 200, guild_id: int | None = None, shards: Shards | None = None
    ) -> list[Job]:
        """Jobs to run now: pending whose time has come (not waiting for a member), or
        running past their lease; of one guild, or of the guilds on `shards`."""
        shard_sql, shard_params = on_shards(shards)
        sql = f"SELECT * FROM delivery_jobs WHERE {_DUE}{shard_sql}"  # noqa: S608
        params: tuple[Any, ...] = (self.now_iso, self.now_iso, *shard_params)
        if guild_id is not None:
            sql += " AND guild_id=?"
            params += (guild_id,)
        rows = await self._all(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [Job.from_row(row) for row in rows]

    async def due_guilds(self, shards: Shards | None = None) -> list[int]:
        """Guilds (on `shards`) that have at least one job due now."""
        shard_sql, shard_params = on_shards(shards)
        rows = await self._all(
            f"SELECT DISTINCT guild_id FROM delivery_jobs WHERE {_DUE}{shard_sql}",  # noqa: S608
            (self.now_iso, self.now_iso, *shard_params),
        )
        return [row[0] for row in rows]

    async def next_due_at(self, shards: Shards | None = None) -> datetime | None:
        """When the next job (on `shards`) falls due: a pending one's time, or a running
        one's lease end."""
        shard_sql, shard_params = on_shards(shards)
        row = await self._one(
            "SELECT MIN(CASE WHEN status='pending' THEN next_attempt_at ELSE lease_until END)"  # noqa: S608
            " FROM delivery_jobs WHERE ((status='pending' AND waiting_for_member=0)"
            f" OR (status='running' AND lease_until IS NOT NULL)){shard_sql}",
            shard_params,
        )
        return None if row is None or row[0] is None else datetime.fromisoformat(row[0])

    async def start(self, job_id: int, holder: str = "", lease: timedelta = LEASE) -> Claim | None:
        """Claim the job for `holder` until now + `lease`: pending → running, or running past
        its lease (its holder died) → running again under a new fencing token; open an
        attempt row. None when it is not due any more (another process claimed it)."""
        changed = await self._changed(
            "UPDATE delivery_jobs SET status='running', attempts=attempts+1, lease_owner=?,"
            " lease_until=?, fencing=fencing+1, updated_at=? WHERE id=? AND (status='pending'"
            " OR (status='running' AND lease_until IS NOT NULL AND lease_until <= ?))",
            (holder, iso(self.now + lease), self.now_iso, job_id, self.now_iso),
        )
        if not changed:
            return None
        row = await self._one("SELECT fencing FROM delivery_jobs WHERE id=?", (job_id,))
        assert row is not None  # the UPDATE above just changed it
        await self._changed(  # an attempt its dead holder left open
            "UPDATE job_attempts SET finished_at=?, outcome='abandoned',"
            " error='the process running it stopped' WHERE job_id=? AND finished_at IS NULL",
            (self.now_iso, job_id),
        )
        attempt = await self._insert(
            "INSERT INTO job_attempts (job_id, started_at) VALUES (?, ?)", (job_id, self.now_iso)
        )
        return Claim(attempt_id=attempt, fencing=int(row[0]))

    async def renew(self, holder: str, lease: timedelta = LEASE) -> int:
        """Extend the leases of every job `holder` is running; how many."""
        return await self._changed(
            "UPDATE delivery_jobs SET lease_until=? WHERE status='running' AND lease_owner=?",
            (iso(self.now + lease), holder),
        )

    async def finish(
        self,
        job_id: int,
        attempt_id: int,
        *,
        status: str,
        outcome: str,
        error: str | None = None,
        retry_at: datetime | None = None,
        waiting_for_member: bool = False,
        fencing: int | None = None,
    ) -> bool:
        """Close the attempt and move the job to its next status. With `fencing`, only while
        that claim still holds: False (nothing changed but the attempt, closed as
        `superseded`) when the lease ran out and another process claimed the job since."""
        guard = ""
        params: tuple[int, ...] = ()
        if fencing is not None:
            guard = " AND status='running' AND fencing=?"
            params = (fencing,)
        changed = await self._changed(
            "UPDATE delivery_jobs SET status=?, last_error=?, next_attempt_at=?,"  # noqa: S608
            " waiting_for_member=?, lease_owner=NULL, lease_until=NULL, updated_at=?"
            f" WHERE id=?{guard}",
            (
                status,
                error,
                iso(retry_at or self.now),
                int(waiting_for_member),
                self.now_iso,
                job_id,
                *params,
            ),
        )
        await self._changed(
            "UPDATE job_attempts SET finished_at=?, outcome=?, error=? WHERE id=?",
            (self.now_iso, outcome if changed else "superseded", error, attempt_id),
        )
        return bool(changed)

    async def release(self, holder: str) -> int:
        """Shutdown: the jobs `holder` still runs go back to pending for any process (their
        fencing moves on, so this process can no longer record them)."""
        return await self._changed(
            "UPDATE delivery_jobs SET status='pending', next_attempt_at=?, updated_at=?,"
            " lease_owner=NULL, lease_until=NULL, fencing=fencing+1"
            " WHERE status='running' AND lease_owner=?",
            (self.now_iso, self.now_iso, holder),
        )

    async def requeue_running(self, shards: Shards | None = None) -> int:
        """After a crash: every `running` job (of the guilds on `shards`) goes back to
        pending (its effect is idempotent); its fencing token moves on, so a holder that
        is somehow still alive cannot record it."""
        shard_sql, shard_params = on_shards(shards)
        return await self._changed(
            "UPDATE delivery_jobs SET status='pending', next_attempt_at=?, updated_at=?,"  # noqa: S608
            " lease_owner=NULL, lease_until=NULL, fencing=fencing+1"
            f" WHERE status='running'{shard_sql}",
            (self.now_iso, self.now_iso, *shard_params),
        )

    async def waiting_members(self, guild_id: int) -> set[int]:
        """Members of the guild with jobs parked until they join."""
        rows = await self._all(
            "SELECT DISTINCT user_id FROM delivery_jobs"
            " WHERE guild_id=? AND status='pending' AND waiting_for_member=1",
            (guild_id,),
        )
        return {row[0] for row in rows}

    async def wake_member(self, guild_id: int, user_id: int) -> int:
        """The member joined: jobs waiting for them become due now."""
        woken = await self._changed(
            "UPDATE delivery_jobs SET waiting_for_member=0, next_attempt_at=?, updated_at=?"
            " WHERE guild_id=? AND user_id=? AND status='pending'",
            (self.now_iso, self.now_iso, guild_id, user_id),
        )
        self.queued += woken
        return woken

    async def expire_overdue(self) -> int:
        """Pending jobs past their claim deadline become `expired`."""
        return await self._changed(
            "UPDATE delivery_jobs SET status='expired', updated_at=?, last_error="
            " COALESCE(last_error, 'nobody could receive it in time')"
            " WHERE status='pending' AND expires_at IS NOT NULL AND expires_at <= ?",
            (self.now_iso, self.now_iso),
        )

    async def of_member(self, guild_id: int, user_id: int, statuses: tuple[str, ...]) -> list[Job]:
        marks = ", ".join("?" for _ in statuses)
        rows = await self._all(
            f"SELECT * FROM delivery_jobs WHERE guild_id=? AND user_id=?"  # noqa: S608
            f" AND status IN ({marks}) ORDER BY id",
            (guild_id, user_id, *statuses),
        )
        return [Job.from_row(row) for row in rows]

    async def of_guild(self, guild_id: int, status: str | None, limit: int = 20) -> list[Job]:
        sql = "SELECT * FROM delivery_jobs WHERE guild_id=?"
        params: tuple[Any, ...] = (guild_id,)
        if status:
            sql += " AND status=?"
            params += (status,)
        rows = await self._all(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [Job.from_row(row) for row in rows]

    async def retry(self, job_id: int) -> bool:
        """failed/expired → pending, due now (an admin fixed the cause).

        Not when the same repair is already open again (its `open_key` is taken)."""
        changed = bool(
            await self._changed(
                "UPDATE delivery_jobs SET status='pending', waiting_for_member=0,"
                " next_attempt_at=?, expires_at=NULL, updated_at=?"
                " WHERE id=? AND status IN ('failed', 'expired') AND (open_key IS NULL OR"
                " NOT EXISTS (SELECT 1 FROM delivery_jobs AS o WHERE o.open_key ="
                " delivery_jobs.open_key AND o.status IN ('pending', 'running')))",
                (self.now_iso, self.now_iso, job_id),
            )
        )
        self.queued += changed
        return changed

    async def counts(self) -> dict[str, int]:
        rows = await self._all("SELECT status, COUNT(*) FROM delivery_jobs GROUP BY status")
        return {row[0]: row[1] for row in rows}

    async def cancel_pending_of_entitlement(
        self,
        entitlement_id: int,
        *,
        stages: tuple[str, ...],
        kinds: tuple[str, ...] | None,
        reason: str,
    ) -> int:
        """Cancel the entitlement's pending jobs of these stages (and kinds; None = all).

        Running jobs are left alone: they finish, and whatever they did is undone by the
        revocation queued after them.
        """
        marks = ", ".join("?" for _ in stages)
        sql = (
            "UPDATE delivery_jobs SET status='canceled', last_error=?, updated_at=?"  # noqa: S608
            " WHERE entitlement_id=? AND status='pending'"
            f" AND json_extract(payload, '$.stage') IN ({marks})"
        )
        params: tuple[Any, ...] = (reason, self.now_iso, entitlement_id, *stages)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params += kinds
        return await self._changed(sql, params)
