"""Read-only figures for /shop stats, /shop why and /shop diagnose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso
from bot.models import AuditEntry, Entitlement, RoleGrant
from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class ProductFigures:
    name: str
    paid_orders: int
    revenue: int
    currency: str


@dataclass(frozen=True, slots=True)
class ShopFigures:
    orders_by_status: dict[str, int]
    revenue_by_currency: dict[str, int]
    jobs_by_status: dict[str, int]
    per_product: list[ProductFigures]


class StatsRepo(Repo):
    """Aggregates over one guild."""

    async def figures(self, guild_id: int) -> ShopFigures:
        statuses = await self._all(
            "SELECT status, COUNT(*) FROM orders WHERE guild_id=? GROUP BY status", (guild_id,)
        )
        revenue = await self._all(
            "SELECT currency, SUM(amount) FROM orders WHERE guild_id=? AND status='paid'"
            " GROUP BY currency",
            (guild_id,),
        )
        jobs = await self._all(
            "SELECT status, COUNT(*) FROM delivery_jobs WHERE guild_id=? GROUP BY status",
            (guild_id,),
        )
        products = await self._all(
            "SELECT p.name, COUNT(o.id), COALESCE(SUM(o.amount), 0), p.currency"
            " FROM products p LEFT JOIN orders o ON o.product_id = p.id AND o.status = 'paid'"
            " WHERE p.guild_id=? GROUP BY p.id ORDER BY 3 DESC LIMIT 15",
            (guild_id,),
        )
        return ShopFigures(
            orders_by_status={row[0]: row[1] for row in statuses},
            revenue_by_currency={row[0]: row[1] for row in revenue},
            jobs_by_status={row[0]: row[1] for row in jobs},
            per_product=[ProductFigures(*row) for row in products],
        )

    async def entitlements_of_member(self, guild_id: int, user_id: int) -> list[Entitlement]:
        rows = await self._all(
            "SELECT * FROM entitlements WHERE guild_id=? AND user_id=? ORDER BY id DESC LIMIT 15",
            (guild_id, user_id),
        )
        return [Entitlement.from_row(row) for row in rows]

    async def grants_of_member(self, guild_id: int, user_id: int) -> list[RoleGrant]:
        rows = await self._all(
            "SELECT * FROM role_grants WHERE guild_id=? AND user_id=? ORDER BY id DESC LIMIT 25",
            (guild_id, user_id),
        )
        return [RoleGrant.from_row(row) for row in rows]

    async def audit_of_member(self, guild_id: int, user_id: int) -> list[AuditEntry]:
        rows = await self._all(
            "SELECT * FROM audit_log WHERE guild_id=? AND user_id=? ORDER BY id DESC LIMIT 12",
            (guild_id, user_id),
        )
        return [AuditEntry.from_row(row) for row in rows]

    async def oversold_since(self, guild_id: int, since: datetime) -> int:
        """Orders of the guild paid after their product had sold out, since `since`."""
        row = await self._one(
            "SELECT COUNT(*) FROM audit_log WHERE guild_id=? AND kind='order.oversold'"
            " AND created_at >= ?",
            (guild_id, iso(since)),
        )
        return int(row[0]) if row else 0

    async def problems(self, guild_id: int) -> tuple[int, int, str | None]:
        """(failed jobs, failed Stripe events, time of the last webhook received) — all of
        this guild only. An event is the guild's when it concerns one of its orders, or (not
        matched to an order) its metadata names the guild; no other guild's figure shows."""
        failed_jobs = await self._one(
            "SELECT COUNT(*) FROM delivery_jobs WHERE guild_id=? AND status='failed'", (guild_id,)
        )
        of_guild = (
            " FROM webhook_events w LEFT JOIN orders o ON o.id = w.order_id"
            " WHERE (o.guild_id = ? OR (w.order_id IS NULL AND"
            " json_extract(w.payload, '$.data.object.metadata.guild_id') = ?))"
        )
        failed_events = await self._one(
            "SELECT COUNT(*)" + of_guild + " AND w.status='failed'", (guild_id, str(guild_id))
        )
        last = await self._one("SELECT MAX(w.received_at)" + of_guild, (guild_id, str(guild_id)))
        return (
            int(failed_jobs[0]) if failed_jobs else 0,
            int(failed_events[0]) if failed_events else 0,
            last[0] if last else None,
        )
