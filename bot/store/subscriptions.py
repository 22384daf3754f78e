"""Stripe facts kept by Stripe's ids: subscriptions as last seen, and payment reversals."""

from __future__ import annotations

from bot.models import PaymentReversal, Subscription
from bot.store.base import Repo, opt_iso


class SubscriptionRepo(Repo):
    """Plain storage; the rules for merging facts live in bot/lifecycle.py."""

    async def get(self, subscription_id: str) -> Subscription | None:
        row = await self._one(
            "SELECT * FROM subscriptions WHERE stripe_subscription_id=?", (subscription_id,)
        )
        return None if row is None else Subscription.from_row(row)

    async def save(self, sub: Subscription) -> None:
        """Insert or overwrite the whole row (the caller merged it inside this transaction)."""
        await self._changed(
            "INSERT INTO subscriptions (stripe_subscription_id, status, cancel_at_period_end,"
            " current_period_end, paid_through, ended_at, last_event_created, last_event_id,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (stripe_subscription_id) DO UPDATE SET status=excluded.status,"
            " cancel_at_period_end=excluded.cancel_at_period_end,"
            " current_period_end=excluded.current_period_end,"
            " paid_through=excluded.paid_through, ended_at=excluded.ended_at,"
            " last_event_created=excluded.last_event_created,"
            " last_event_id=excluded.last_event_id, updated_at=excluded.updated_at",
            (
                sub.stripe_subscription_id,
                sub.status,
                int(sub.cancel_at_period_end),
                opt_iso(sub.current_period_end),
                opt_iso(sub.paid_through),
                opt_iso(sub.ended_at),
                sub.last_event_created,
                sub.last_event_id,
                self.now_iso,
            ),
        )

    async def giving_access(self) -> list[str]:
        """Subscriptions behind an active entitlement here (what the drift check asks about)."""
        rows = await self._all(
            "SELECT DISTINCT o.stripe_subscription_id FROM orders o"
            " JOIN entitlements e ON e.order_id = o.id"
            " WHERE e.status='active' AND o.stripe_subscription_id IS NOT NULL"
            " ORDER BY o.stripe_subscription_id"
        )
        return [str(row[0]) for row in rows]

    async def record_reversal(
        self, payment_intent_id: str, kind: str, object_id: str, event_id: str, created: int
    ) -> bool:
        """Note a full refund / dispute of a payment; False if that kind was already noted."""
        changed = await self._changed(
            "INSERT INTO payment_reversals (stripe_payment_intent_id, kind, stripe_object_id,"
            " event_id, created, recorded_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (stripe_payment_intent_id, kind) DO NOTHING",
            (payment_intent_id, kind, object_id, event_id, created, self.now_iso),
        )
        return changed > 0

    async def reversals(self, payment_intent_id: str) -> list[PaymentReversal]:
        """Reversals of one payment intent, refunds before disputes."""
        rows = await self._all(
            "SELECT * FROM payment_reversals WHERE stripe_payment_intent_id=? ORDER BY kind DESC",
            (payment_intent_id,),
        )
        return [PaymentReversal.from_row(row) for row in rows]
