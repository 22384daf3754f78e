"""Outbound webhook endpoints and the log of every delivery attempt (migration 0014)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import parse_iso
from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    secret: str
    enabled: bool
    created_at: datetime
    failing_since: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status_code: int | None
    error: str | None
    attempted_at: datetime


_COLUMNS = "id, url, events, secret, enabled, created_at, failing_since, disabled_reason"


def _endpoint(row: object) -> Endpoint:
    r = row  # aiosqlite.Row
    return Endpoint(
        id=int(r[0]),  # type: ignore[index]
        url=str(r[1]),  # type: ignore[index]
        events=tuple(e for e in str(r[2]).split(",") if e),  # type: ignore[index]
        secret=str(r[3]),  # type: ignore[index]
        enabled=bool(r[4]),  # type: ignore[index]
        created_at=parse_iso(r[5]),  # type: ignore[index]
        failing_since=None if r[6] is None else parse_iso(r[6]),  # type: ignore[index]
        disabled_reason=r[7],  # type: ignore[index]
    )


class WebhookRepo(Repo):
    """Endpoints (a deleted one is kept for its log, never listed or sent to again)."""

    caches_reads = True  # `all`: every fact of an inbox batch asks who subscribed

    async def create(self, url: str, events: tuple[str, ...], secret: str) -> Endpoint:
        new_id = await self._insert(
            "INSERT INTO webhook_endpoints (url, events, secret, enabled, created_at)"
            " VALUES (?, ?, ?, 1, ?)",
            (url, ",".join(events), secret, self.now_iso),
        )
        endpoint = await self.get(new_id)
        assert endpoint is not None
        return endpoint

    async def get(self, endpoint_id: int) -> Endpoint | None:
        """The endpoint, or None when there is none (or it was deleted)."""
        row = await self._one(
            f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id=? AND deleted=0",  # noqa: S608
            (endpoint_id,),
        )
        return None if row is None else _endpoint(row)

    async def all(self) -> list[Endpoint]:
        return list(await self._cached(("webhook_endpoints",), self._all_endpoints))

    async def _all_endpoints(self) -> tuple[Endpoint, ...]:
        rows = await self._all(
            f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE deleted=0 ORDER BY id"  # noqa: S608
        )
        return tuple(_endpoint(row) for row in rows)

    async def subscribed(self, event_type: str) -> list[Endpoint]:
        """Enabled endpoints that asked for `event_type`."""
        return [e for e in await self.all() if e.enabled and event_type in e.events]

    async def delete(self, endpoint_id: int) -> bool:
        """False when there is no such endpoint; its pending deliveries fail when they run."""
        return bool(
            await self._changed(
                "UPDATE webhook_endpoints SET deleted=1, enabled=0 WHERE id=? AND deleted=0",
                (endpoint_id,),
            )
        )

    async def record_attempt(
        self,
        endpoint_id: int,
        *,
        event_id: str,
        event_type: str,
        job_id: int | None,
        status_code: int | None,
        error: str | None,
    ) -> None:
        """Log one POST; a 2xx clears the endpoint's failing streak, a failure starts one."""
        await self._insert(
            "INSERT INTO webhook_attempts (endpoint_id, event_id, event_type, job_id,"
            " status_code, error, attempted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (endpoint_id, event_id, event_type, job_id, status_code, error, self.now_iso),
        )
        if error is None:
            await self._changed(
                "UPDATE webhook_endpoints SET failing_since=NULL WHERE id=?", (endpoint_id,)
            )
        else:
            await self._changed(
                "UPDATE webhook_endpoints SET failing_since=COALESCE(failing_since, ?) WHERE id=?",
                (self.now_iso, endpoint_id),
            )

    async def disable(self, endpoint_id: int, reason: str) -> bool:
        """enabled → disabled, once; False when it was not enabled."""
        return bool(
            await self._changed(
                "UPDATE webhook_endpoints SET enabled=0, disabled_reason=?"
                " WHERE id=? AND enabled=1",
                (reason, endpoint_id),
            )
        )

    async def attempts(self, endpoint_id: int, limit: int = 50) -> list[Attempt]:
        """The endpoint's latest delivery attempts, newest first."""
        rows = await self._all(
            "SELECT id, endpoint_id, event_id, event_type, status_code, error, attempted_at"
            " FROM webhook_attempts WHERE endpoint_id=? ORDER BY id DESC LIMIT ?",
            (endpoint_id, limit),
        )
        return [
            Attempt(
                id=int(r[0]),
                endpoint_id=int(r[1]),
                event_id=str(r[2]),
                event_type=str(r[3]),
                status_code=None if r[4] is None else int(r[4]),
                error=r[5],
                attempted_at=parse_iso(r[6]),
            )
            for r in rows
        ]

    async def log_guilds(self) -> list[int]:
        """Guilds with an admin log channel (an endpoint is install-wide: all are told)."""
        rows = await self._all("SELECT guild_id FROM log_channels ORDER BY guild_id")
        return [int(r[0]) for r in rows]
