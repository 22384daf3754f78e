"""Join tokens: a web buyer's encrypted Discord access token, until the add-member job ran."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import parse_iso
from bot.store.base import Repo, opt_iso


@dataclass(frozen=True, slots=True)
class JoinToken:
    """The sealed token of one order (the ciphertext only; bot/vault.py opens it)."""

    order_id: int
    user_id: int
    ciphertext: str
    expires_at: datetime


class JoinTokenRepo(Repo):
    """One row per web order that may add its buyer to the server."""

    async def put(self, order_id: int, user_id: int, ciphertext: str, expires_at: datetime) -> None:
        await self._changed(
            "INSERT INTO join_tokens (order_id, user_id, ciphertext, expires_at, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (order_id, user_id, ciphertext, opt_iso(expires_at), self.now_iso),
        )

    async def get(self, order_id: int) -> JoinToken | None:
        """The order's token while it has not expired (None: none, used, or expired)."""
        row = await self._one(
            "SELECT * FROM join_tokens WHERE order_id=? AND expires_at > ?",
            (order_id, self.now_iso),
        )
        if row is None:
            return None
        return JoinToken(
            order_id=int(row["order_id"]),
            user_id=int(row["user_id"]),
            ciphertext=row["ciphertext"],
            expires_at=parse_iso(row["expires_at"]),
        )

    async def drop(self, order_id: int) -> bool:
        """Forget the order's token (it was used, or can no longer be); whether one was kept."""
        return await self._changed("DELETE FROM join_tokens WHERE order_id=?", (order_id,)) > 0

    async def drop_expired(self) -> int:
        """Delete every token past its expiry; how many."""
        return await self._changed("DELETE FROM join_tokens WHERE expires_at <= ?", (self.now_iso,))
