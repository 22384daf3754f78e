"""Stripe customers: one per Discord user of this install."""

from __future__ import annotations

from bot.store.base import Repo


class CustomerRepo(Repo):
    async def of_user(self, user_id: int) -> str | None:
        """The user's Stripe customer, or (before this table existed) the newest one a
        checkout of theirs created."""
        row = await self._one(
            "SELECT stripe_customer_id FROM customers WHERE user_id=?", (user_id,)
        )
        if row is None:
            row = await self._one(
                "SELECT stripe_customer_id FROM orders WHERE buyer_id=?"
                " AND stripe_customer_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                (user_id,),
            )
        return None if row is None else str(row[0])

    async def remember(self, user_id: int, customer_id: str) -> str:
        """Keep the first customer stored for the user; return the one that is kept."""
        await self._changed(
            "INSERT INTO customers (user_id, stripe_customer_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO NOTHING",
            (user_id, customer_id, self.now_iso),
        )
        row = await self._one(
            "SELECT stripe_customer_id FROM customers WHERE user_id=?", (user_id,)
        )
        assert row is not None
        return str(row[0])
