"""Read-only figures for /shop stats, /shop why and /shop diagnose."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso, parse_iso
from bot.models import AuditEntry, Entitlement, RoleGrant
from bot.store.base import Repo


@dataclass(frozen=True, slots=True)
class Takings:
    """Money received on one UTC day for one product: a paid one-off order, or a paid
    invoice of a subscription (renewals included; a trial's free invoice counts 0)."""

    day: str  # YYYY-MM-DD
    product_id: int
    product: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An active entitlement that a Stripe subscription pays for."""

    user_id: int
    product_id: int
    amount: int
    currency: str
    interval: str | None
    status: str | None  # Stripe's status as last seen (None: no subscription event yet)


@dataclass(frozen=True, slots=True)
class Reversal:
    kind: str  # refund | dispute
    currency: str
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class PeriodRows:
    """Everything /shop stats [period] counts, since a moment (None: all time)."""

    takings: list[Takings]
    sold: dict[int, int]  # product id → orders paid in the period
    subscribers: list[Subscriber]
    new_subscriptions: int
    churned_subscriptions: int
    reversals: list[Reversal]
    jobs_by_status: dict[str, int]


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A Stripe event behind a change to an order: an audit row that names one, or a full
    refund / dispute recorded under the order's payment (or its subscription's invoice)."""

    order_id: int
    at: datetime
    what: str  # the audit kind, or `refund` / `dispute`
    event_id: str


class StatsRepo(Repo):
    """Aggregates over one guild."""

    async def period(
        self, guild_id: int, since: datetime | None, job_kinds: tuple[str, ...]
    ) -> PeriodRows:
        """The guild's figures since `since` (None: all time). Only jobs of `job_kinds` count
        as deliveries. Orders of another guild, and unpaid orders, never count."""
        start = iso(since) if since is not None else ""
        takings = await self._all(
            "SELECT substr(o.paid_at, 1, 10), o.product_id, p.name, o.currency, SUM(o.amount)"
            " FROM orders o JOIN products p ON p.id = o.product_id"
            " WHERE o.guild_id=? AND o.stripe_subscription_id IS NULL AND o.paid_at >= ?"
            " AND o.status IN ('paid', 'refunded', 'disputed') GROUP BY 1, 2, 3, 4"
            " UNION ALL"
            " SELECT substr(i.paid_at, 1, 10), o.product_id, p.name, o.currency,"
            " SUM(i.amount_paid) FROM invoices i"
            " JOIN orders o ON o.stripe_subscription_id = i.stripe_subscription_id"
            " JOIN products p ON p.id = o.product_id"
            " WHERE o.guild_id=? AND i.paid_at >= ? GROUP BY 1, 2, 3, 4 ORDER BY 1",
            (guild_id, start, guild_id, start),
        )
        sold = await self._all(
            "SELECT product_id, COUNT(*) FROM orders WHERE guild_id=? AND paid_at >= ?"
            " AND status IN ('paid', 'refunded', 'disputed') GROUP BY product_id",
            (guild_id, start),
        )
        subscribers = await self._all(
            "SELECT e.user_id, e.product_id, o.amount, o.currency, p.interval, s.status"
            " FROM entitlements e JOIN orders o ON o.id = e.order_id"
            " JOIN products p ON p.id = e.product_id"
            " LEFT JOIN subscriptions s ON s.stripe_subscription_id = o.stripe_subscription_id"
            " WHERE e.guild_id=? AND e.status='active' AND o.stripe_subscription_id IS NOT NULL",
            (guild_id,),
        )
        new = await self._one(
            "SELECT COUNT(*) FROM orders WHERE guild_id=? AND stripe_subscription_id IS NOT NULL"
            " AND paid_at >= ?",
            (guild_id, start),
        )
        churned = await self._one(
            "SELECT COUNT(*) FROM entitlements e JOIN orders o ON o.id = e.order_id"
            " WHERE e.guild_id=? AND o.stripe_subscription_id IS NOT NULL"
            " AND e.status IN ('expired', 'revoked') AND e.updated_at >= ?",
            (guild_id, start),
        )
        # A refund or dispute names a payment intent: a one-off order's own, or (through
        # invoice_payments) an invoice of the subscription an order holds.
        reversals = await self._all(
            "SELECT r.kind, o.currency, COUNT(*), SUM(COALESCE(i.amount_paid, o.amount))"
            " FROM payment_reversals r"
            " LEFT JOIN invoice_payments ip"
            " ON ip.stripe_payment_intent_id = r.stripe_payment_intent_id"
            " LEFT JOIN invoices i ON i.stripe_invoice_id = ip.stripe_invoice_id"
            " JOIN orders o ON o.stripe_payment_intent_id = r.stripe_payment_intent_id"
            " OR (ip.stripe_subscription_id IS NOT NULL"
            " AND o.stripe_subscription_id = ip.stripe_subscription_id)"
            " WHERE o.guild_id=? AND r.recorded_at >= ? GROUP BY r.kind, o.currency",
            (guild_id, start),
        )
        jobs = await self._all(
            "SELECT status, COUNT(*) FROM delivery_jobs WHERE guild_id=? AND created_at >= ?"
            " AND kind IN (SELECT value FROM json_each(?)) GROUP BY status",
            (guild_id, start, json.dumps(list(job_kinds))),
        )
        return PeriodRows(
            takings=[Takings(*row) for row in takings],
            sold={row[0]: row[1] for row in sold},
            subscribers=[Subscriber(*row) for row in subscribers],
            new_subscriptions=int(new[0]) if new else 0,
            churned_subscriptions=int(churned[0]) if churned else 0,
            reversals=[Reversal(*row) for row in reversals],
            jobs_by_status={row[0]: row[1] for row in jobs},
        )

    async def order_events(self, order_ids: list[int]) -> list[OrderEvent]:
        """Stripe events behind these orders, oldest first (orders not listed never show)."""
        if not order_ids:
            return []
        wanted = json.dumps(order_ids)
        rows = await self._all(
            "SELECT CAST(json_extract(detail, '$.order_id') AS BIGINT), created_at, kind,"
            " json_extract(detail, '$.event_id') FROM audit_log"
            " WHERE CAST(json_extract(detail, '$.order_id') AS TEXT)"
            " IN (SELECT CAST(value AS TEXT) FROM json_each(?))"
            " AND json_extract(detail, '$.event_id') IS NOT NULL"
            " UNION ALL"
            " SELECT o.id, r.recorded_at, r.kind, r.event_id FROM payment_reversals r"
            " LEFT JOIN invoice_payments ip"
            " ON ip.stripe_payment_intent_id = r.stripe_payment_intent_id"
            " JOIN orders o ON o.stripe_payment_intent_id = r.stripe_payment_intent_id"
            " OR (ip.stripe_subscription_id IS NOT NULL"
            " AND o.stripe_subscription_id = ip.stripe_subscription_id)"
            " WHERE o.id IN (SELECT CAST(value AS BIGINT) FROM json_each(?)) ORDER BY 2",
            (wanted, wanted),
        )
        return [OrderEvent(int(r[0]), parse_iso(r[1]), r[2], str(r[3])) for r in rows]

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
