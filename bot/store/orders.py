"""Orders, entitlements and the role grant ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.models import Entitlement, Order, RoleGrant
from bot.store.base import Repo, opt_iso

_ORDER_FIELDS = {
    "status",
    "recipient_id",
    "stripe_session_id",
    "stripe_payment_intent_id",
    "stripe_subscription_id",
    "stripe_customer_id",
    "checkout_url",
    "checkout_expires_at",
    "claim_code",
    "failure_reason",
    "paid_at",
}


class OrderRepo(Repo):
    """Orders. Status changes are compare-and-set so a duplicate event changes nothing."""

    async def create(
        self,
        *,
        guild_id: int,
        buyer_id: int,
        recipient_id: int | None,
        product_id: int,
        amount: int,
        currency: str,
        source: str = "discord",
        cancel_token: str | None = None,
    ) -> Order:
        new_id = await self._insert(
            "INSERT INTO orders (guild_id, buyer_id, recipient_id, product_id, amount, currency,"
            " status, source, cancel_token, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                guild_id,
                buyer_id,
                recipient_id,
                product_id,
                amount,
                currency,
                source,
                cancel_token,
                self.now_iso,
                self.now_iso,
            ),
        )
        order = await self.get(new_id)
        assert order is not None
        return order

    async def get(self, order_id: int) -> Order | None:
        row = await self._one("SELECT * FROM orders WHERE id=?", (order_id,))
        return None if row is None else Order.from_row(row)

    async def by_session(self, session_id: str) -> Order | None:
        row = await self._one("SELECT * FROM orders WHERE stripe_session_id=?", (session_id,))
        return None if row is None else Order.from_row(row)

    async def by_claim_code(self, code: str) -> Order | None:
        row = await self._one("SELECT * FROM orders WHERE claim_code=?", (code,))
        return None if row is None else Order.from_row(row)

    async def update(
        self, order_id: int, *, only_if_status: tuple[str, ...] = (), **changes: Any
    ) -> bool:
        """Set fields; with `only_if_status`, only when the current status is one of them.

        Returns whether the row changed (False = someone else got there first).
        """
        unknown = set(changes) - _ORDER_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = {k: (opt_iso(v) if isinstance(v, datetime) else v) for k, v in changes.items()}
        values["updated_at"] = self.now_iso
        assignments = ", ".join(f"{column}=?" for column in values)
        sql = f"UPDATE orders SET {assignments} WHERE id=?"  # noqa: S608 - fixed keys
        params: tuple[Any, ...] = (*values.values(), order_id)
        if only_if_status:
            sql += f" AND status IN ({', '.join('?' for _ in only_if_status)})"
            params += only_if_status
        return await self._changed(sql, params) > 0

    async def claim(self, order_id: int, user_id: int) -> bool:
        """Make `user_id` the recipient of an unclaimed order, and its buyer too when it had
        none (a web order bought without a Discord login). False: someone got there first."""
        return (
            await self._changed(
                "UPDATE orders SET recipient_id=?,"
                " buyer_id=CASE WHEN buyer_id=0 THEN ? ELSE buyer_id END, updated_at=?"
                " WHERE id=? AND recipient_id IS NULL",
                (user_id, user_id, self.now_iso, order_id),
            )
            > 0
        )

    async def open_checkouts(self, guild_id: int, buyer_id: int) -> list[Order]:
        """Pending orders whose checkout link has not expired yet."""
        rows = await self._all(
            "SELECT * FROM orders WHERE guild_id=? AND buyer_id=? AND status='pending'"
            " AND (checkout_expires_at IS NULL OR checkout_expires_at > ?) ORDER BY id",
            (guild_id, buyer_id, self.now_iso),
        )
        return [Order.from_row(row) for row in rows]

    async def stale_pending(
        self, *, expired_before: datetime, created_before: datetime, limit: int = 100
    ) -> list[Order]:
        """Pending orders whose checkout can no longer be paid: the link expired before
        `expired_before`, or (no expiry stored) the order was created before `created_before`.
        Oldest first."""
        rows = await self._all(
            "SELECT * FROM orders WHERE status='pending' AND (checkout_expires_at <= ?"
            " OR (checkout_expires_at IS NULL AND created_at <= ?)) ORDER BY id LIMIT ?",
            (opt_iso(expired_before), opt_iso(created_before), limit),
        )
        return [Order.from_row(row) for row in rows]

    async def of_member(self, guild_id: int, user_id: int, limit: int = 25) -> list[Order]:
        """Orders the member bought or received, newest first (abandoned checkouts left out)."""
        rows = await self._all(
            "SELECT * FROM orders WHERE guild_id=? AND (buyer_id=? OR recipient_id=?)"
            " AND status NOT IN ('expired') ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, user_id, limit),
        )
        return [Order.from_row(row) for row in rows]

    async def by_payment_intent(self, payment_intent_id: str) -> Order | None:
        """The order a payment intent paid (from our own records); the newest if several."""
        row = await self._one(
            "SELECT * FROM orders WHERE stripe_payment_intent_id=? ORDER BY id DESC LIMIT 1",
            (payment_intent_id,),
        )
        return None if row is None else Order.from_row(row)

    async def by_subscription(self, subscription_id: str) -> Order | None:
        """The order that started a Stripe subscription; the newest if several."""
        row = await self._one(
            "SELECT * FROM orders WHERE stripe_subscription_id=? ORDER BY id DESC LIMIT 1",
            (subscription_id,),
        )
        return None if row is None else Order.from_row(row)

    async def export_rows(self) -> list[dict[str, Any]]:
        """Every order with its product name, oldest first (for `shopbot export`)."""
        rows = await self._all(
            "SELECT o.*, p.name AS product FROM orders o JOIN products p ON p.id = o.product_id"
            " ORDER BY o.id"
        )
        return [dict(zip(row.keys(), tuple(row), strict=True)) for row in rows]

    async def of_guild(
        self, guild_id: int, user_id: int | None, status: str | None, limit: int = 20
    ) -> list[Order]:
        """Newest orders of a guild, optionally of one member (buyer or recipient) or status."""
        where, params = order_filter(user_id, status)
        rows = await self._all(
            "SELECT * FROM orders WHERE guild_id=?"  # noqa: S608 - fixed conditions
            + where
            + " ORDER BY id DESC LIMIT ?",
            (guild_id, *params, limit),
        )
        return [Order.from_row(row) for row in rows]


def order_filter(user_id: int | None, status: str | None) -> tuple[str, tuple[Any, ...]]:
    """` AND …` conditions for orders of one member (buyer or recipient) and/or status."""
    sql = ""
    params: tuple[Any, ...] = ()
    if user_id is not None:
        sql, params = " AND (buyer_id=? OR recipient_id=?)", (user_id, user_id)
    if status is not None:
        sql, params = sql + " AND status=?", (*params, status)
    return sql, params


class EntitlementRepo(Repo):
    """Entitlements and the ledger of roles the bot granted for them."""

    async def create(
        self,
        *,
        guild_id: int,
        user_id: int,
        product_id: int,
        order_id: int | None,
        ends_at: datetime | None,
    ) -> Entitlement:
        # RETURNING: the new row in the same statement (SQLite ≥ 3.35 and PostgreSQL);
        # entitlements have no unique index, so there is no conflict to map to Duplicate.
        row = await self._one(
            "INSERT INTO entitlements (guild_id, user_id, product_id, order_id, status,"
            " starts_at, ends_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?) RETURNING *",
            (
                guild_id,
                user_id,
                product_id,
                order_id,
                self.now_iso,
                opt_iso(ends_at),
                self.now_iso,
                self.now_iso,
            ),
        )
        assert row is not None, "an INSERT … RETURNING answers its row"
        return Entitlement.from_row(row)

    async def get(self, entitlement_id: int) -> Entitlement | None:
        row = await self._one("SELECT * FROM entitlements WHERE id=?", (entitlement_id,))
        return None if row is None else Entitlement.from_row(row)

    async def by_order(self, order_id: int) -> Entitlement | None:
        row = await self._one("SELECT * FROM entitlements WHERE order_id=?", (order_id,))
        return None if row is None else Entitlement.from_row(row)

    async def active_of_member(self, guild_id: int, user_id: int) -> list[Entitlement]:
        rows = await self._all(
            "SELECT * FROM entitlements WHERE guild_id=? AND user_id=? AND status='active'"
            " ORDER BY id",
            (guild_id, user_id),
        )
        return [Entitlement.from_row(row) for row in rows]

    async def revoked_for(self, guild_id: int, user_id: int, reason: str) -> list[Entitlement]:
        """The member's entitlements revoked for `reason` (e.g. `chargeback`)."""
        rows = await self._all(
            "SELECT * FROM entitlements WHERE guild_id=? AND user_id=? AND status='revoked'"
            " AND end_reason=? ORDER BY id",
            (guild_id, user_id, reason),
        )
        return [Entitlement.from_row(row) for row in rows]

    async def record_grant(self, entitlement: Entitlement, role_id: int) -> None:
        """Note in the ledger that the bot gave this role for this entitlement."""
        await self._changed(
            "INSERT INTO role_grants (guild_id, user_id, role_id, entitlement_id, status,"
            " granted_at) VALUES (?, ?, ?, ?, 'granted', ?)"
            " ON CONFLICT (entitlement_id, role_id) DO UPDATE SET status='granted',"
            " granted_at=excluded.granted_at, revoked_at=NULL",
            (entitlement.guild_id, entitlement.user_id, role_id, entitlement.id, self.now_iso),
        )

    async def grants_of_member(self, guild_id: int, user_id: int) -> list[RoleGrant]:
        rows = await self._all(
            "SELECT * FROM role_grants WHERE guild_id=? AND user_id=? ORDER BY id",
            (guild_id, user_id),
        )
        return [RoleGrant.from_row(row) for row in rows]

    # lifecycle (bot/lifecycle.py) ------------------------------------------------------

    async def set_end(
        self, entitlement_id: int, status: str, end_reason: str, *, expected: tuple[str, str | None]
    ) -> bool:
        """Move to an ended state if the row is still in `expected` (status, end_reason)."""
        return (
            await self._changed(
                "UPDATE entitlements SET status=?, end_reason=?, updated_at=?"
                " WHERE id=? AND status=? AND COALESCE(end_reason, '') = COALESCE(?, '')",
                (status, end_reason, self.now_iso, entitlement_id, *expected),
            )
            > 0
        )

    async def extend_to(self, entitlement_id: int, ends_at: datetime) -> bool:
        """Push `ends_at` forward to `ends_at` (never back), whatever the status."""
        value = opt_iso(ends_at)
        return (
            await self._changed(
                "UPDATE entitlements SET ends_at=?, updated_at=?"
                " WHERE id=? AND (ends_at IS NULL OR ends_at < ?)",
                (value, self.now_iso, entitlement_id, value),
            )
            > 0
        )

    async def restore_lapsed(self, entitlement_id: int) -> bool:
        """expired/lapsed → active with the next cycle; False for any other state."""
        return (
            await self._changed(
                "UPDATE entitlements SET status='active', end_reason=NULL, cycle=cycle+1,"
                " updated_at=? WHERE id=? AND status='expired' AND end_reason='lapsed'",
                (self.now_iso, entitlement_id),
            )
            > 0
        )

    async def due_to_end(
        self, *, cutoff: datetime, subscription_cutoff: datetime, limit: int = 100
    ) -> list[Entitlement]:
        """Active entitlements whose end has passed: `ends_at` <= `cutoff`, or for
        subscriptions (which get a grace period) `ends_at` <= `subscription_cutoff`."""
        rows = await self._all(
            "SELECT e.* FROM entitlements e JOIN products p ON p.id = e.product_id"
            " WHERE e.status='active' AND e.ends_at IS NOT NULL AND e.ends_at <="
            " CASE WHEN p.kind='subscription' THEN ? ELSE ? END ORDER BY e.ends_at, e.id LIMIT ?",
            (opt_iso(subscription_cutoff), opt_iso(cutoff), limit),
        )
        return [Entitlement.from_row(row) for row in rows]

    async def active_holders_of_role(self, guild_id: int, user_id: int, role_id: int) -> list[int]:
        """Ids of the member's active entitlements whose product grants `role_id`."""
        rows = await self._all(
            "SELECT DISTINCT e.id FROM entitlements e JOIN actions a ON a.product_id = e.product_id"
            " WHERE e.guild_id=? AND e.user_id=? AND e.status='active' AND a.removed=0"
            " AND a.type='grant_role' AND a.stage='on_purchase' AND a.role_id=? ORDER BY e.id",
            (guild_id, user_id, role_id),
        )
        return [int(row[0]) for row in rows]

    async def granted_role_rows(self, guild_id: int, user_id: int, role_id: int) -> list[RoleGrant]:
        """Ledger rows saying the bot gave this member this role and has not taken it back."""
        rows = await self._all(
            "SELECT * FROM role_grants WHERE guild_id=? AND user_id=? AND role_id=?"
            " AND status='granted' ORDER BY id",
            (guild_id, user_id, role_id),
        )
        return [RoleGrant.from_row(row) for row in rows]

    async def mark_role_revoked(self, guild_id: int, user_id: int, role_id: int) -> int:
        """Every `granted` ledger row of this member and role becomes `revoked`."""
        return await self._changed(
            "UPDATE role_grants SET status='revoked', revoked_at=?"
            " WHERE guild_id=? AND user_id=? AND role_id=? AND status='granted'",
            (self.now_iso, guild_id, user_id, role_id),
        )
