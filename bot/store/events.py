"""The Stripe webhook inbox and the audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.clock import iso, parse_iso
from bot.models import AuditEntry, WebhookEvent
from bot.store.base import Repo


class EventRepo(Repo):
    """Verified Stripe events, stored by id before they are acknowledged."""

    async def insert(self, event_id: str, event_type: str, created: int, payload: str) -> bool:
        """Store a new event; False when the id was already stored (a duplicate delivery)."""
        changed = await self._changed(
            "INSERT INTO webhook_events (id, type, created, payload, status, received_at)"
            " VALUES (?, ?, ?, ?, 'received', ?) ON CONFLICT (id) DO NOTHING",
            (event_id, event_type, created, payload, self.now_iso),
        )
        return changed > 0

    async def insert_many(self, events: list[tuple[str, str, int, str]]) -> list[bool]:
        """Store (id, type, created, payload) events in one statement per 500; for each,
        False when its id was already stored (or came earlier in the same list)."""
        fresh: list[bool] = []
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            values = ", ".join(["(?, ?, ?, ?, 'received', ?)"] * len(chunk))
            columns = "id, type, created, payload, status, received_at"
            sql = f"INSERT INTO webhook_events ({columns}) VALUES {values}"  # noqa: S608 - placeholders only
            sql += " ON CONFLICT (id) DO NOTHING RETURNING id"
            params = tuple(v for e in chunk for v in (*e, self.now_iso))
            stored = {row[0] for row in await self._all(sql, params)}
            for event_id, *_ in chunk:
                fresh.append(event_id in stored)
                stored.discard(event_id)  # a second copy in the same list is a duplicate
        return fresh

    async def get(self, event_id: str) -> WebhookEvent | None:
        row = await self._one("SELECT * FROM webhook_events WHERE id=?", (event_id,))
        return None if row is None else WebhookEvent.from_row(row)

    async def states(self, event_ids: list[str]) -> dict[str, tuple[str, int]]:
        """(status, attempts) of each of these events that is stored, one statement per 500.

        The ids are bound one by one (not as a JSON list): an id is whatever text Stripe's
        envelope carried, and must compare exactly as `get` compares it."""
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._all(
                f"SELECT id, status, attempts FROM webhook_events WHERE id IN ({marks})",  # noqa: S608 - placeholders only
                tuple(chunk),
            )
            found.update({row[0]: (str(row[1]), int(row[2])) for row in rows})
        return found

    async def unprocessed(self, limit: int = 100) -> list[WebhookEvent]:
        """Events received and due (not waiting out a retry backoff), oldest first."""
        rows = await self._all(
            "SELECT * FROM webhook_events WHERE status='received'"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY received_at, id LIMIT ?",
            (self.now_iso, limit),
        )
        return [WebhookEvent.from_row(row) for row in rows]

    async def next_retry_at(self) -> datetime | None:
        """When the earliest event waiting out a backoff becomes due (None: none waits)."""
        row = await self._one(
            "SELECT MIN(next_attempt_at) FROM webhook_events"
            " WHERE status='received' AND next_attempt_at > ?",
            (self.now_iso,),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def retry_later(self, event_id: str, error: str, at: datetime) -> None:
        """A transient failure: count the attempt, keep the error, try again at `at`."""
        await self._changed(
            "UPDATE webhook_events SET status='received', last_error=?, attempts=attempts+1,"
            " next_attempt_at=? WHERE id=?",
            (error, iso(at), event_id),
        )

    async def retry_failed(self) -> int:
        """Put every failed event back in line, due now (`shopbot events retry`)."""
        return await self._changed(
            "UPDATE webhook_events SET status='received', attempts=0, next_attempt_at=NULL"
            " WHERE status='failed'",
            (),
        )

    async def mark(
        self, event_id: str, status: str, *, order_id: int | None = None, error: str | None = None
    ) -> None:
        await self._changed(
            "UPDATE webhook_events SET status=?, order_id=COALESCE(?, order_id), last_error=?,"
            " attempts=attempts+1, processed_at=?, next_attempt_at=NULL WHERE id=?",
            (status, order_id, error, self.now_iso, event_id),
        )

    async def status_counts(self, event_ids: list[str]) -> dict[str, int]:
        """How many of these events are in each status."""
        rows = await self._all(
            "SELECT status, COUNT(*) FROM webhook_events"
            " WHERE id IN (SELECT value FROM json_each(?)) GROUP BY status",
            (json.dumps(event_ids),),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def newest_created(self) -> int | None:
        """Stripe's `created` of the newest event we hold (None: none yet)."""
        row = await self._one("SELECT MAX(created) FROM webhook_events")
        return None if row is None or row[0] is None else int(row[0])

    async def last_received(self) -> WebhookEvent | None:
        row = await self._one("SELECT * FROM webhook_events ORDER BY received_at DESC LIMIT 1")
        return None if row is None else WebhookEvent.from_row(row)

    async def count(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM webhook_events")
        return 0 if row is None else int(row[0])


class AuditRepo(Repo):
    """Append-only record of what happened to whom and why."""

    async def add(
        self,
        kind: str,
        *,
        guild_id: int | None = None,
        user_id: int | None = None,
        actor_id: int | None = None,
        **detail: Any,
    ) -> None:
        await self._changed(
            "INSERT INTO audit_log (guild_id, user_id, actor_id, kind, detail, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, user_id, actor_id, kind, json.dumps(detail, default=str), self.now_iso),
        )

    async def latest_of_order(self, kind: str, order_id: int) -> AuditEntry | None:
        """The newest entry of this kind whose detail names the order (None: there is none)."""
        row = await self._one(
            "SELECT * FROM audit_log WHERE kind=?"
            " AND CAST(json_extract(detail, '$.order_id') AS TEXT) = ?"
            " ORDER BY id DESC LIMIT 1",
            (kind, str(order_id)),
        )
        return None if row is None else AuditEntry.from_row(row)

    async def of_member(self, guild_id: int, user_id: int, limit: int = 50) -> list[AuditEntry]:
        rows = await self._all(
            "SELECT * FROM audit_log WHERE guild_id=? AND user_id=? ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [AuditEntry.from_row(row) for row in rows]
