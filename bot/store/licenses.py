"""License keys as validated by integrators: the key's standing and its bound devices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import parse_iso
from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class LicenseFacts:
    """What validation needs about one handed-out key (all from one query)."""

    license_id: int
    key: str
    product_id: int
    max_devices: int
    order_status: str | None
    user_id: int | None
    entitlement_status: str | None
    end_reason: str | None
    ends_at: datetime | None


class LicenseRepo(Repo):
    """`license_keys` seen from validation, and `license_devices` (migration 0014)."""

    async def facts(self, key: str) -> LicenseFacts | None:
        """The handed-out key `key` (reserved or delivered to an order), with its order and
        entitlement; None when no order holds such a key. The same one indexed query runs
        whether or not the key exists."""
        row = await self._one(
            "SELECT k.id, k.key, k.product_id, p.max_devices, o.status AS order_status,"
            " COALESCE(e.user_id, o.recipient_id) AS user_id, e.status AS ent_status,"
            " e.end_reason, e.ends_at FROM license_keys AS k"
            " JOIN products AS p ON p.id = k.product_id"
            " JOIN orders AS o ON o.id = k.order_id"
            " LEFT JOIN entitlements AS e ON e.order_id = o.id"
            " WHERE k.key = ? AND k.delivered_at IS NOT NULL ORDER BY k.id LIMIT 1",
            (key,),
        )
        if row is None:
            return None
        return LicenseFacts(
            license_id=int(row[0]),
            key=str(row[1]),
            product_id=int(row[2]),
            max_devices=int(row[3]),
            order_status=row[4],
            user_id=None if row[5] is None else int(row[5]),
            entitlement_status=row[6],
            end_reason=row[7],
            ends_at=None if row[8] is None else parse_iso(row[8]),
        )

    async def devices(self, license_id: int) -> dict[str, datetime]:
        """The hwids bound to the key with when each was last seen, first bound first (none
        for an unknown id)."""
        rows = await self._all(
            "SELECT hwid, last_seen_at FROM license_devices WHERE license_id=? ORDER BY id",
            (license_id,),
        )
        return {str(row[0]): parse_iso(row[1]) for row in rows}

    async def touch(self, license_id: int, hwid: str) -> bool:
        """Mark `hwid` seen on the key; False when it is not bound to it (or no such key)."""
        return bool(
            await self._changed(
                "UPDATE license_devices SET last_seen_at=? WHERE license_id=? AND hwid=?",
                (self.now_iso, license_id, hwid),
            )
        )

    async def bind(self, license_id: int, hwid: str) -> None:
        """Bind `hwid` to the key (a second bind of the same pair changes nothing)."""
        await self.conn.execute(
            "INSERT INTO license_devices (license_id, hwid, bound_at, last_seen_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (license_id, hwid) DO NOTHING",
            (license_id, hwid, self.now_iso, self.now_iso),
        )

    async def unbind_all(self, key: str, guild_id: int | None = None) -> int | None:
        """Forget every device bound to the handed-out key `key` (of a product of
        `guild_id`, when given); None when there is no such key, else how many were
        unbound."""
        sql = (
            "SELECT k.id FROM license_keys AS k JOIN products AS p ON p.id = k.product_id"
            " WHERE k.key=? AND k.delivered_at IS NOT NULL"
        )
        params: tuple[object, ...] = (key,)
        if guild_id is not None:
            sql, params = sql + " AND p.guild_id=?", (*params, guild_id)
        row = await self._one(sql + " ORDER BY k.id LIMIT 1", params)
        if row is None:
            return None
        return await self._changed("DELETE FROM license_devices WHERE license_id=?", (row[0],))
