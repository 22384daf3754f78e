"""Admin log channels, the notices queued for them, and the reads reminders are planned from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso, parse_iso
from bot.models import Entitlement
from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class LogNotice:
    id: int
    guild_id: int
    kind: str
    text: str
    retry_job_id: int | None
    created_at: datetime
    amount: int | None = None  # a sale's or refund's amount (minor units), for totals
    currency: str | None = None


class NoticeRepo(Repo):
    """`log_channels` and `log_notices` (migration 0011)."""

    caches_reads = True  # `log_channel`: asked for every sale of an inbox batch

    async def log_channel(self, guild_id: int) -> int | None:
        """The guild's admin log channel, or None when it is off."""
        return await self._cached(("log_channel", guild_id), lambda: self._log_channel(guild_id))

    async def _log_channel(self, guild_id: int) -> int | None:
        row = await self._one("SELECT channel_id FROM log_channels WHERE guild_id=?", (guild_id,))
        return None if row is None else int(row[0])

    async def set_log_channel(self, guild_id: int, channel_id: int | None, actor_id: int) -> None:
        """Set (or, with None, turn off) the guild's log channel."""
        if channel_id is None:
            await self._changed("DELETE FROM log_channels WHERE guild_id=?", (guild_id,))
            return
        await self._changed(
            "INSERT INTO log_channels (guild_id, channel_id, set_by, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " channel_id=excluded.channel_id, set_by=excluded.set_by,"
            " updated_at=excluded.updated_at",
            (guild_id, channel_id, actor_id, self.now_iso),
        )

    async def add(
        self,
        guild_id: int,
        kind: str,
        text: str,
        *,
        key: str | None,
        retry_job_id: int | None,
        amount: tuple[int, str] | None = None,
    ) -> bool:
        """Queue a notice (`amount`: minor units and currency, summed in summaries); False
        when `key` was queued before (nothing written)."""
        minor, currency = amount if amount is not None else (None, None)
        changed = await self._changed(
            "INSERT INTO log_notices (guild_id, kind, text, dedupe_key, retry_job_id,"
            " created_at, amount, currency) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (guild_id, kind, text, key, retry_job_id, self.now_iso, minor, currency),
        )
        return changed > 0

    async def unsent(self, guild_id: int, limit: int = 500) -> list[LogNotice]:
        """The guild's notices not posted yet, oldest first."""
        rows = await self._all(
            "SELECT id, guild_id, kind, text, retry_job_id, created_at, amount, currency"
            " FROM log_notices WHERE guild_id=? AND sent_at IS NULL ORDER BY id LIMIT ?",
            (guild_id, limit),
        )
        return [LogNotice(r[0], r[1], r[2], r[3], r[4], parse_iso(r[5]), r[6], r[7]) for r in rows]

    async def oldest_unsent(self, guild_id: int) -> datetime | None:
        row = await self._one(
            "SELECT MIN(created_at) FROM log_notices WHERE guild_id=? AND sent_at IS NULL",
            (guild_id,),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def mark_sent(self, ids: list[int]) -> None:
        marks = ", ".join("?" for _ in ids)
        await self._changed(
            f"UPDATE log_notices SET sent_at=? WHERE id IN ({marks})",  # noqa: S608
            (self.now_iso, *ids),
        )

    async def ending_before(self, cutoff: datetime, limit: int = 500) -> list[Entitlement]:
        """Active entitlements with an end date between now and `cutoff` (reminders)."""
        rows = await self._all(
            "SELECT * FROM entitlements WHERE status='active' AND ends_at IS NOT NULL"
            " AND ends_at > ? AND ends_at <= ? ORDER BY ends_at LIMIT ?",
            (self.now_iso, iso(cutoff), limit),
        )
        return [Entitlement.from_row(row) for row in rows]

    async def webhook_silence(self) -> tuple[datetime | None, list[tuple[int, datetime]]]:
        """When the last Stripe event was received, and per guild the oldest checkout started
        after it (the webhook silence check)."""
        row = await self._one("SELECT MAX(received_at) FROM webhook_events")
        last = None if row is None or row[0] is None else parse_iso(row[0])
        rows = await self._all(
            "SELECT guild_id, MIN(created_at) FROM orders WHERE stripe_session_id IS NOT NULL"
            " AND created_at > ? GROUP BY guild_id",
            (iso(last) if last else "",),
        )
        return last, [(r[0], parse_iso(r[1])) for r in rows]
