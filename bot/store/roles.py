"""What roles members should have, from entitlements and the role grant ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class WantedRole:
    """A role an active entitlement says the member should hold."""

    user_id: int
    role_id: int
    entitlement_id: int
    order_id: int | None
    action_id: int


class RoleRepo(Repo):
    """Bulk reads for reconciliation (one query per guild, not one per member)."""

    async def wanted(self, guild_id: int, user_ids: list[int]) -> list[WantedRole]:
        """Every (member, role) that an active entitlement's grant_role action gives,
        for these members (one page of the member list)."""
        rows = await self._all(
            "SELECT e.user_id, a.role_id, e.id, e.order_id, a.id FROM entitlements e"
            " JOIN actions a ON a.product_id = e.product_id AND a.type = 'grant_role'"
            " AND a.stage = 'on_purchase' AND a.removed = 0 AND a.role_id IS NOT NULL"
            " WHERE e.guild_id = ? AND e.status = 'active'"
            " AND e.user_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?)) ORDER BY e.id",
            (guild_id, json.dumps(user_ids)),
        )
        return [WantedRole(*row) for row in rows]

    async def stale(self, guild_id: int, user_ids: list[int]) -> set[tuple[int, int]]:
        """(member, role) pairs the bot granted whose entitlement is no longer active."""
        rows = await self._all(
            "SELECT rg.user_id, rg.role_id FROM role_grants rg"
            " JOIN entitlements e ON e.id = rg.entitlement_id"
            " WHERE rg.guild_id = ? AND rg.status = 'granted' AND e.status != 'active'"
            " AND rg.user_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
            (guild_id, json.dumps(user_ids)),
        )
        return {(row[0], row[1]) for row in rows}

    async def granted_since(self, guild_id: int, since: str) -> set[tuple[int, int]]:
        """(member, role) pairs the bot granted at or after `since` (ISO time)."""
        rows = await self._all(
            "SELECT user_id, role_id FROM role_grants"
            " WHERE guild_id = ? AND status = 'granted' AND granted_at >= ?",
            (guild_id, since),
        )
        return {(row[0], row[1]) for row in rows}

    async def queued(self, guild_id: int) -> set[tuple[int, int, str]]:
        """(member, role, kind) of role jobs already pending or running."""
        rows = await self._all(
            "SELECT user_id, json_extract(payload, '$.role_id'), kind FROM delivery_jobs"
            " WHERE guild_id = ? AND status IN ('pending', 'running')"
            " AND kind IN ('grant_role', 'revoke_role')",
            (guild_id,),
        )
        return {(row[0], int(row[1]), row[2]) for row in rows if row[1] is not None}

    # membership screening ------------------------------------------------------------

    async def start_screening(self, guild_id: int, user_id: int) -> None:
        """The member joined but has not passed membership screening yet."""
        await self._changed(
            "INSERT INTO pending_screening (guild_id, user_id, joined_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET joined_at = excluded.joined_at",
            (guild_id, user_id, self.now_iso),
        )

    async def in_screening(self, guild_id: int, user_id: int) -> bool:
        row = await self._one(
            "SELECT 1 FROM pending_screening WHERE guild_id=? AND user_id=?", (guild_id, user_id)
        )
        return row is not None

    async def end_screening(self, guild_id: int, user_id: int) -> bool:
        """Forget the member's screening; True if they were in it."""
        return bool(
            await self._changed(
                "DELETE FROM pending_screening WHERE guild_id=? AND user_id=?",
                (guild_id, user_id),
            )
        )
