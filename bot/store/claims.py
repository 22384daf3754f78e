"""Wrong claim codes per user, for the /claim attempt limit."""

from __future__ import annotations

from datetime import datetime

from bot.clock import iso, parse_iso
from bot.store.base import Repo


class ClaimAttemptRepo(Repo):
    """Wrong /claim codes, one row each, kept only as long as the limit looks back."""

    async def wrong_since(self, user_id: int, since: datetime) -> list[datetime]:
        """When this user gave a wrong code after `since` (in any guild), oldest first."""
        rows = await self._all(
            "SELECT attempted_at FROM claim_attempts WHERE user_id=? AND attempted_at > ?"
            " ORDER BY attempted_at",
            (user_id, iso(since)),
        )
        return [parse_iso(row[0]) for row in rows]

    async def record_wrong(self, guild_id: int, user_id: int, forget_before: datetime) -> None:
        """One wrong code now; this user's rows from before `forget_before` are dropped."""
        await self._changed(
            "DELETE FROM claim_attempts WHERE user_id=? AND attempted_at <= ?",
            (user_id, iso(forget_before)),
        )
        await self._insert(
            "INSERT INTO claim_attempts (user_id, guild_id, attempted_at) VALUES (?, ?, ?)",
            (user_id, guild_id, self.now_iso),
        )
