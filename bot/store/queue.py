"""The durable delivery queue: jobs and one history row per attempt."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.clock import iso
from bot.models import Job
from bot.store.base import Repo, opt_iso


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

    async def due(self, limit: int = 200, guild_id: int | None = None) -> list[Job]:
        """Pending jobs whose time has come and that are not waiting for a member."""
        sql = (
            "SELECT * FROM delivery_jobs WHERE status='pending' AND waiting_for_member=0"
            " AND next_attempt_at <= ?"
        )
        params: tuple[Any, ...] = (self.now_iso,)
        if guild_id is not None:
            sql += " AND guild_id=?"
            params += (guild_id,)
        rows = await self._all(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [Job.from_row(row) for row in rows]

    async def due_guilds(self) -> list[int]:
        """Guilds that have at least one job due now."""
        rows = await self._all(
            "SELECT DISTINCT guild_id FROM delivery_jobs WHERE status='pending'"
            " AND waiting_for_member=0 AND next_attempt_at <= ?",
            (self.now_iso,),
        )
        return [row[0] for row in rows]

    async def next_due_at(self) -> datetime | None:
        row = await self._one(
            "SELECT MIN(next_attempt_at) FROM delivery_jobs"
            " WHERE status='pending' AND waiting_for_member=0"
        )
        return None if row is None or row[0] is None else datetime.fromisoformat(row[0])

    async def start(self, job_id: int) -> int | None:
        """Mark pending → running and open an attempt row; None if not pending any more."""
        changed = await self._changed(
            "UPDATE delivery_jobs SET status='running', attempts=attempts+1, updated_at=?"
            " WHERE id=? AND status='pending'",
            (self.now_iso, job_id),
        )
        if not changed:
            return None
        return await self._insert(
            "INSERT INTO job_attempts (job_id, started_at) VALUES (?, ?)", (job_id, self.now_iso)
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
    ) -> None:
        """Close the attempt and move the job to its next status."""
        await self._changed(
            "UPDATE job_attempts SET finished_at=?, outcome=?, error=? WHERE id=?",
            (self.now_iso, outcome, error, attempt_id),
        )
        await self._changed(
            "UPDATE delivery_jobs SET status=?, last_error=?, next_attempt_at=?,"
            " waiting_for_member=?, updated_at=? WHERE id=?",
            (
                status,
                error,
                iso(retry_at or self.now),
                int(waiting_for_member),
                self.now_iso,
                job_id,
            ),
        )

    async def requeue_running(self) -> int:
        """After a crash: every `running` job goes back to pending (its effect is idempotent)."""
        return await self._changed(
            "UPDATE delivery_jobs SET status='pending', next_attempt_at=?, updated_at=?"
            " WHERE status='running'",
            (self.now_iso, self.now_iso),
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
