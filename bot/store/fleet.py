"""Coordination rows of a fleet of processes (migration 0017): IDENTIFY slots and leases."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import iso, parse_iso
from bot.store.base import Repo

#: pg_advisory_xact_lock keys of the IDENTIFY buckets: this base + the bucket number
#: (bot/store/pg.py's locks are "shop" + a digit; these are "shoq" + the bucket).
IDENTIFY_LOCK_BASE = 0x73686F7100_000000


class FleetRepo(Repo):
    """`identify_slots` (one IDENTIFY per bucket per spacing) and `fleet_leases`."""

    async def reserve_identify(self, bucket: int, now: datetime, spacing: timedelta) -> datetime:
        """The moment this bucket may IDENTIFY: `now`, or `spacing` after the one reserved
        before it; recorded as the bucket's last IDENTIFY, so the next caller of any
        process queues behind it. The caller waits until then and sends."""
        if self.conn.dialect == "postgresql":  # the bucket's turn, whatever else writes
            await self._one("SELECT pg_advisory_xact_lock(?)", (IDENTIFY_LOCK_BASE + bucket,))
        row = await self._one("SELECT last_at FROM identify_slots WHERE bucket=?", (bucket,))
        slot = now if row is None else max(now, parse_iso(row[0]) + spacing)
        await self._changed(
            "INSERT INTO identify_slots (bucket, last_at) VALUES (?, ?)"
            " ON CONFLICT (bucket) DO UPDATE SET last_at=excluded.last_at",
            (bucket, iso(slot)),
        )
        return slot

    async def hold_lease(self, name: str, holder: str, ttl: timedelta) -> int | None:
        """Take or renew lease `name` for `holder` until now + ttl. Its fencing token (grown
        by one at each takeover from another holder), or None while another holder's lease
        has not expired."""
        expires = iso(self.now + ttl)
        renewed = await self._changed(
            "UPDATE fleet_leases SET"
            " fencing = CASE WHEN holder=? THEN fencing ELSE fencing + 1 END,"
            " holder=?, expires_at=?"
            " WHERE name=? AND (holder=? OR expires_at<=?)",
            (holder, holder, expires, name, holder, self.now_iso),
        )
        if not renewed:
            taken = await self._changed(
                "INSERT INTO fleet_leases (name, holder, fencing, expires_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, holder, expires),
            )
            if not taken:
                return None
        row = await self._one(
            "SELECT fencing FROM fleet_leases WHERE name=? AND holder=?", (name, holder)
        )
        return None if row is None else int(row[0])

    async def release_lease(self, name: str, holder: str) -> bool:
        """Let the lease go at once (a clean shutdown): another process takes it over at its
        next try instead of after the lease ran out."""
        return bool(
            await self._changed(
                "UPDATE fleet_leases SET expires_at=? WHERE name=? AND holder=?",
                (self.now_iso, name, holder),
            )
        )

    async def lease(self, name: str) -> tuple[str, int, str] | None:
        """(holder, fencing, expires_at) of the lease, or None if nobody ever took it."""
        row = await self._one(
            "SELECT holder, fencing, expires_at FROM fleet_leases WHERE name=?", (name,)
        )
        return None if row is None else (str(row[0]), int(row[1]), str(row[2]))
