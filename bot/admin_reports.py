"""Read models behind `/shop orders|queue|stats|why|diagnose`: what the admin commands show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

from bot.errors import InvalidInput
from bot.i18n import N_
from bot.models import ActionType, AuditEntry, Entitlement, Job, Order, RoleGrant
from bot.store import Store
from bot.store.stats import OrderEvent, PeriodRows, Subscriber


@dataclass(frozen=True)
class MemberReport:
    """Why a member has or lacks shop roles: access (with product names), ledger, history."""

    entitlements: list[tuple[Entitlement, str]]
    grants: list[RoleGrant]
    audit: list[AuditEntry]
    events: list[OrderEvent] = field(default_factory=list)  # Stripe events behind its orders


@dataclass(frozen=True)
class QueuedJob:
    """A delivery job and the Stripe event behind it (None: no event, e.g. a grant by hand)."""

    job: Job
    event_id: str | None


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

#: /shop stats periods (SPEC §4): how many UTC days back, today included (None: all time).
PERIODS: dict[str, int | None] = {"7d": 7, "30d": 30, "all": None}
#: What a month is worth of one payment per interval (MRR normalises every plan to a month).
MONTHS_PER_INTERVAL = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}
#: Jobs that deliver what was bought (DMs about it are notices, not deliveries).
DELIVERY_KINDS = (*(str(kind) for kind in ActionType), "revoke_role")
#: Stripe statuses of a subscription that pays (a trial does not, yet).
PAYING = {None, "active", "past_due"}

__all__ = [
    "PERIODS",
    "AdminReports",
    "GuildProblems",
    "MemberReport",
    "PeriodStats",
    "ProductStats",
    "QueuedJob",
    "monthly_recurring",
]


@dataclass(frozen=True)
class ProductStats:
    name: str
    sold: int  # orders paid in the period
    revenue: dict[str, int]  # per currency


@dataclass(frozen=True)
class PeriodStats:
    """/shop stats [period]: money is per currency (never summed across currencies)."""

    period: str
    days: list[date]  # every UTC day of the period, oldest first (the chart's x axis)
    revenue: dict[str, int]
    revenue_per_day: dict[str, list[int]]  # currency → amount per day, aligned with `days`
    mrr: dict[str, int]
    active_subscribers: int
    trialing: int
    new_subscriptions: int
    churned_subscriptions: int
    refunds: dict[str, tuple[int, int]]  # currency → (count, amount)
    disputes: dict[str, tuple[int, int]]
    deliveries: dict[str, int]  # job status → count
    per_product: list[ProductStats] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """Completed / (completed + failed); None while nothing has finished."""
        done, failed = self.deliveries.get("completed", 0), self.deliveries.get("failed", 0)
        return done / (done + failed) if done + failed else None


def monthly_recurring(subscribers: list[Subscriber]) -> dict[str, int]:
    """MRR per currency: each paying subscription's price, normalised to one month."""
    totals: dict[str, Fraction] = {}
    for sub in subscribers:
        if sub.status not in PAYING or sub.interval not in MONTHS_PER_INTERVAL:
            continue
        worth = sub.amount * MONTHS_PER_INTERVAL[sub.interval]
        totals[sub.currency] = totals.get(sub.currency, Fraction(0)) + worth
    return {currency: round(total) for currency, total in sorted(totals.items())}


def period_start(period: str, now: datetime) -> datetime | None:
    """Midnight UTC of the period's first day (None for `all`); InvalidInput otherwise."""
    if period not in PERIODS:
        raise InvalidInput(N_("`period` must be 7d, 30d or all."))
    days = PERIODS[period]
    if days is None:
        return None
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return datetime.combine(first, time(), UTC)


def summarise(period: str, rows: PeriodRows, since: datetime | None, now: datetime) -> PeriodStats:
    """Fold the store's rows into the figures /shop stats shows."""
    today = now.astimezone(UTC).date()
    first = since.date() if since is not None else None
    if first is None:
        seen = [date.fromisoformat(t.day) for t in rows.takings]
        first = min(seen, default=today - timedelta(days=29))
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    index = {day.isoformat(): n for n, day in enumerate(days)}
    revenue: dict[str, int] = {}
    per_day: dict[str, list[int]] = {}
    products: dict[int, ProductStats] = {}
    for t in rows.takings:
        revenue[t.currency] = revenue.get(t.currency, 0) + t.amount
        series = per_day.setdefault(t.currency, [0] * len(days))
        if t.day in index:
            series[index[t.day]] += t.amount
        item = products.setdefault(t.product_id, ProductStats(t.product, 0, {}))
        item.revenue[t.currency] = item.revenue.get(t.currency, 0) + t.amount
    per_product = [
        ProductStats(p.name, rows.sold.get(pid, 0), dict(sorted(p.revenue.items())))
        for pid, p in products.items()
    ]
    per_product.sort(key=lambda p: (-p.sold, p.name))
    reversals: dict[str, dict[str, tuple[int, int]]] = {"refund": {}, "dispute": {}}
    for r in rows.reversals:
        reversals.setdefault(r.kind, {})[r.currency] = (r.count, r.amount)
    paying = [s for s in rows.subscribers if s.status in PAYING]
    return PeriodStats(
        period=period,
        days=days,
        revenue=dict(sorted(revenue.items())),
        revenue_per_day=dict(sorted(per_day.items())),
        mrr=monthly_recurring(rows.subscribers),
        active_subscribers=len({(s.user_id, s.product_id) for s in paying}),
        trialing=sum(1 for s in rows.subscribers if s.status == "trialing"),
        new_subscriptions=rows.new_subscriptions,
        churned_subscriptions=rows.churned_subscriptions,
        refunds=reversals["refund"],
        disputes=reversals["dispute"],
        deliveries=rows.jobs_by_status,
        per_product=per_product[:15],
    )


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

    async def queue(self, guild_id: int, status: str | None) -> list[QueuedJob]:
        """Recent jobs, each with the newest Stripe event of its order made before it."""
        async with self.store.reading() as tx:
            jobs = await tx.jobs.of_guild(guild_id, status)
            order_ids = sorted({j.order_id for j in jobs if j.order_id is not None})
            events = await tx.stats.order_events(order_ids)
        queued = []
        for job in jobs:
            before = [e for e in events if e.order_id == job.order_id and e.at <= job.created_at]
            queued.append(QueuedJob(job, before[-1].event_id if before else None))
        return queued

    async def period_stats(self, guild_id: int, period: str) -> PeriodStats:
        """/shop stats [period]: `7d`, `30d` (UTC days, today included) or `all`."""
        async with self.store.reading() as tx:
            since = period_start(period, tx.now)
            rows = await tx.stats.period(guild_id, since, DELIVERY_KINDS)
            now = tx.now
        return summarise(period, rows, since, now)

    async def member(self, guild_id: int, user_id: int) -> MemberReport:
        async with self.store.reading() as tx:
            entitlements = await tx.stats.entitlements_of_member(guild_id, user_id)
            named = []
            for entitlement in entitlements:
                product = await tx.products.get(entitlement.product_id)
                named.append((entitlement, product.name if product else "?"))
            grants = await tx.stats.grants_of_member(guild_id, user_id)
            audit = await tx.stats.audit_of_member(guild_id, user_id)
            order_ids = sorted({e.order_id for e in entitlements if e.order_id is not None})
            events = await tx.stats.order_events(order_ids)
        return MemberReport(named, grants, audit, events)

    async def problems(self, guild_id: int) -> GuildProblems:
        async with self.store.reading() as tx:
            actions = await tx.products.role_actions_of_guild(guild_id)
            failed_jobs, failed_events, last_webhook = await tx.stats.problems(guild_id)
            oversold = await tx.stats.oversold_since(guild_id, tx.now - OVERSOLD_WINDOW)
        role_ids = sorted({a.role_id for a in actions if a.role_id})
        return GuildProblems(role_ids, failed_jobs, failed_events, last_webhook, oversold)
