"""The integration API's tables: keys, idempotent answers, external orders, and the paged
reads of orders, products and deliveries its routes serve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.clock import parse_iso
from bot.models import Entitlement, Job, Order, Product
from bot.store.base import Repo
from bot.store.orders import order_filter


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What POST /orders answered the first time for one Idempotency-Key."""

    request_hash: str
    status: int
    body: str


@dataclass(frozen=True, slots=True)
class JobAttempt:
    id: int
    job_id: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    error: str | None


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(part for part in row["scopes"].split(",") if part),
        created_at=parse_iso(row["created_at"]),
        last_used_at=parse_iso(row["last_used_at"]) if row["last_used_at"] else None,
        revoked_at=parse_iso(row["revoked_at"]) if row["revoked_at"] else None,
    )


class ApiRepo(Repo):
    """API keys, idempotency records and the API's paged reads."""

    # keys ----------------------------------------------------------------------------

    async def add_key(self, name: str, prefix: str, key_hash: str, scopes: list[str]) -> ApiKey:
        new_id = await self._insert(
            "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, prefix, key_hash, ",".join(scopes), self.now_iso),
        )
        key = await self.key(new_id)
        assert key is not None
        return key

    async def key(self, key_id: int) -> ApiKey | None:
        row = await self._one("SELECT * FROM api_keys WHERE id=?", (key_id,))
        return None if row is None else _key(row)

    async def live_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash (the caller compares hashes again in constant
        time); None for an unknown or revoked key."""
        row = await self._one(
            "SELECT * FROM api_keys WHERE key_hash=? AND revoked_at IS NULL", (key_hash,)
        )
        return None if row is None else _key(row)

    async def key_hash(self, key_id: int) -> str | None:
        row = await self._one("SELECT key_hash FROM api_keys WHERE id=?", (key_id,))
        return None if row is None else str(row[0])

    async def keys(self) -> list[ApiKey]:
        return [_key(row) for row in await self._all("SELECT * FROM api_keys ORDER BY id")]

    async def revoke_key(self, key_id: int) -> bool:
        """Revoke a live key; False when there is none with this id (or it is revoked)."""
        return bool(
            await self._changed(
                "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (self.now_iso, key_id),
            )
        )

    async def touch_key(self, key_id: int) -> None:
        await self._changed("UPDATE api_keys SET last_used_at=? WHERE id=?", (self.now_iso, key_id))

    # idempotency ---------------------------------------------------------------------

    async def answer(self, key_id: int, idempotency_key: str) -> StoredAnswer | None:
        row = await self._one(
            "SELECT request_hash, status, body FROM api_idempotency"
            " WHERE api_key_id=? AND idempotency_key=?",
            (key_id, idempotency_key),
        )
        return None if row is None else StoredAnswer(row[0], int(row[1]), row[2])

    async def keep_answer(
        self, key_id: int, idempotency_key: str, request_hash: str, status: int, body: str
    ) -> None:
        """Record the answer; raises Duplicate when another request kept one first."""
        await self._changed(
            "INSERT INTO api_idempotency (api_key_id, idempotency_key, request_hash, status,"
            " body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, idempotency_key, request_hash, status, body, self.now_iso),
        )

    # external orders -----------------------------------------------------------------

    async def record_order(self, order_id: int, key_id: int, reference: str) -> None:
        await self._changed(
            "INSERT INTO api_orders (order_id, api_key_id, reference, created_at)"
            " VALUES (?, ?, ?, ?)",
            (order_id, key_id, reference, self.now_iso),
        )

    async def references(self, order_ids: list[int]) -> dict[int, str]:
        if not order_ids:
            return {}
        marks = ", ".join("?" for _ in order_ids)
        rows = await self._all(
            f"SELECT order_id, reference FROM api_orders WHERE order_id IN ({marks})",  # noqa: S608
            tuple(order_ids),
        )
        return {int(row[0]): str(row[1]) for row in rows}

    # paged reads ---------------------------------------------------------------------

    async def products(self, guild_id: int, after: int, limit: int) -> list[Product]:
        """Live (not archived) products of a guild with id > after, oldest first."""
        rows = await self._all(
            "SELECT * FROM products WHERE guild_id=? AND archived=0 AND id>? ORDER BY id LIMIT ?",
            (guild_id, after, limit),
        )
        return [Product.from_row(row) for row in rows]

    async def orders(
        self,
        *,
        guild_id: int | None,
        user_id: int | None,
        status: str | None,
        after: int,
        limit: int,
    ) -> list[Order]:
        """Orders with id > after, oldest first, filtered by guild, member (buyer or
        recipient) and status."""
        where, params = order_filter(user_id, status)
        if guild_id is not None:
            where, params = where + " AND guild_id=?", (*params, guild_id)
        rows = await self._all(
            "SELECT * FROM orders WHERE id>?" + where + " ORDER BY id LIMIT ?",  # noqa: S608 - fixed conditions
            (after, *params, limit),
        )
        return [Order.from_row(row) for row in rows]

    async def jobs_of_order(self, order_id: int) -> list[Job]:
        rows = await self._all(
            "SELECT * FROM delivery_jobs WHERE order_id=? ORDER BY id", (order_id,)
        )
        return [Job.from_row(row) for row in rows]

    async def attempts(self, job_ids: list[int]) -> list[JobAttempt]:
        if not job_ids:
            return []
        marks = ", ".join("?" for _ in job_ids)
        rows = await self._all(
            f"SELECT * FROM job_attempts WHERE job_id IN ({marks}) ORDER BY id",  # noqa: S608
            tuple(job_ids),
        )
        return [
            JobAttempt(
                id=row["id"],
                job_id=row["job_id"],
                started_at=parse_iso(row["started_at"]),
                finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None,
                outcome=row["outcome"],
                error=row["error"],
            )
            for row in rows
        ]

    async def entitlements_of_member(
        self, guild_id: int, user_id: int
    ) -> list[tuple[Entitlement, str]]:
        """Every entitlement of the member in the guild with its product's name, newest
        first: (Entitlement row, product name)."""
        rows = await self._all(
            "SELECT e.*, p.name AS product_name FROM entitlements e"
            " JOIN products p ON p.id = e.product_id"
            " WHERE e.guild_id=? AND e.user_id=? ORDER BY e.id DESC LIMIT 500",
            (guild_id, user_id),
        )
        return [(Entitlement.from_row(row), str(row["product_name"])) for row in rows]
