"""Read models behind `/shop orders|queue|stats|why|diagnose`: what the admin commands show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.models import AuditEntry, Entitlement, Job, Order, RoleGrant
from bot.store import Store
from bot.store.stats import ShopFigures


@dataclass(frozen=True)
class MemberReport:
    """Why a member has or lacks shop roles: access (with product names), ledger, history."""

    entitlements: list[tuple[Entitlement, str]]
    grants: list[RoleGrant]
    audit: list[AuditEntry]


@dataclass(frozen=True)
class GuildProblems:
    """What `/shop diagnose` needs from the database; Discord-side checks are the cog's."""

    role_ids: list[int]
    failed_jobs: int
    failed_events: int
    last_webhook: str | None
    oversold: int = 0  # orders paid after their product sold out, last OVERSOLD_WINDOW


#: How far back /shop diagnose reports orders paid after their product sold out.
OVERSOLD_WINDOW = timedelta(days=30)

__all__ = ["AdminReports", "GuildProblems", "MemberReport", "ShopFigures"]


class AdminReports:
    """Answers the admin commands' questions in one read transaction each."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def orders(
        self, guild_id: int, user_id: int | None, status: str | None
    ) -> list[tuple[Order, str]]:
        """Recent orders with their product's name ('?' for a product since removed)."""
        async with self.store.reading() as tx:
            orders = await tx.orders.of_guild(guild_id, user_id, status)
            named = []
            for order in orders:
                product = await tx.products.get(order.product_id)
                named.append((order, product.name if product else "?"))
        return named

    async def queue(self, guild_id: int, status: str | None) -> list[Job]:
        async with self.store.reading() as tx:
            return await tx.jobs.of_guild(guild_id, status)

    async def stats(self, guild_id: int) -> ShopFigures:
        async with self.store.reading() as tx:
            return await tx.stats.figures(guild_id)

    async def member(self, guild_id: int, user_id: int) -> MemberReport:
        async with self.store.reading() as tx:
            entitlements = await tx.stats.entitlements_of_member(guild_id, user_id)
            named = []
            for entitlement in entitlements:
                product = await tx.products.get(entitlement.product_id)
                named.append((entitlement, product.name if product else "?"))
            grants = await tx.stats.grants_of_member(guild_id, user_id)
            audit = await tx.stats.audit_of_member(guild_id, user_id)
        return MemberReport(named, grants, audit)

    async def problems(self, guild_id: int) -> GuildProblems:
        async with self.store.reading() as tx:
            actions = await tx.products.role_actions_of_guild(guild_id)
            failed_jobs, failed_events, last_webhook = await tx.stats.problems(guild_id)
            oversold = await tx.stats.oversold_since(guild_id, tx.now - OVERSOLD_WINDOW)
        role_ids = sorted({a.role_id for a in actions if a.role_id})
        return GuildProblems(role_ids, failed_jobs, failed_events, last_webhook, oversold)
