"""Discord SKUs linked to products, the entitlements Discord reported, and their orders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.clock import parse_iso
from bot.store.base import Repo, opt_iso


@dataclass(frozen=True, slots=True)
class SkuLink:
    """An SKU of the app sold as one product of a guild."""

    guild_id: int
    sku_id: int
    product_id: int
    sku_type: int
    sku_name: str


@dataclass(frozen=True, slots=True)
class DiscordEntitlement:
    """An entitlement as every report of it merged (bot/skus.py has the merge rule)."""

    id: int
    sku_id: int
    user_id: int | None
    guild_id: int | None
    type: int
    deleted: bool
    consumed: bool
    ends_at: datetime | None

    def entitled(self, now: datetime) -> bool:
        """Discord's rule: not deleted and (no end or not ended yet)."""
        return not self.deleted and (self.ends_at is None or now < self.ends_at)


def _link(row: Any) -> SkuLink:
    return SkuLink(int(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))


_LINK = "SELECT guild_id, sku_id, product_id, sku_type, sku_name FROM sku_links"
_ENT = (
    "SELECT id, sku_id, user_id, guild_id, type, deleted, consumed, ends_at"
    " FROM discord_entitlements"
)


def _entitlement(row: Any) -> DiscordEntitlement:
    return DiscordEntitlement(
        id=int(row[0]),
        sku_id=int(row[1]),
        user_id=None if row[2] is None else int(row[2]),
        guild_id=None if row[3] is None else int(row[3]),
        type=int(row[4]),
        deleted=bool(row[5]),
        consumed=bool(row[6]),
        ends_at=None if row[7] is None else parse_iso(row[7]),
    )


class SkuRepo(Repo):
    """Links, entitlements and the order each made per guild."""

    # links ---------------------------------------------------------------------------

    async def link(
        self, guild_id: int, sku_id: int, product_id: int, sku_type: int, sku_name: str, actor: int
    ) -> None:
        """Link (or re-link) an SKU of this guild to a product. Raises Duplicate when the
        product is already sold as another SKU."""
        await self._changed(
            "INSERT INTO sku_links (guild_id, sku_id, product_id, sku_type, sku_name, linked_by,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, sku_id) DO UPDATE"
            " SET product_id=excluded.product_id, sku_type=excluded.sku_type,"
            " sku_name=excluded.sku_name, linked_by=excluded.linked_by",
            (guild_id, sku_id, product_id, sku_type, sku_name, actor, self.now_iso),
        )

    async def unlink(self, guild_id: int, sku_id: int) -> bool:
        """Whether a link was removed (False: the SKU was not linked here)."""
        return (
            await self._changed(
                "DELETE FROM sku_links WHERE guild_id=? AND sku_id=?", (guild_id, sku_id)
            )
            > 0
        )

    async def links_of_guild(self, guild_id: int) -> list[SkuLink]:
        rows = await self._all(_LINK + " WHERE guild_id=? ORDER BY sku_id", (guild_id,))
        return [_link(row) for row in rows]

    async def links_of_sku(self, sku_id: int) -> list[SkuLink]:
        """Every guild selling this SKU, in guild order."""
        rows = await self._all(_LINK + " WHERE sku_id=? ORDER BY guild_id", (sku_id,))
        return [_link(row) for row in rows]

    async def link_of_product(self, product_id: int) -> SkuLink | None:
        row = await self._one(_LINK + " WHERE product_id=?", (product_id,))
        return None if row is None else _link(row)

    async def linked_products(self, guild_id: int) -> dict[int, int]:
        """product id → SKU id, for the guild's linked products."""
        return {link.product_id: link.sku_id for link in await self.links_of_guild(guild_id)}

    # entitlements --------------------------------------------------------------------

    async def merge(self, data: dict[str, Any]) -> DiscordEntitlement:
        """Fold one report of an entitlement into what we know: `deleted` and `consumed`
        only turn true, `ends_at` only moves later (a report without one keeps ours)."""
        ends_at = data.get("ends_at")
        ends = opt_iso(parse_iso(ends_at)) if ends_at else None
        await self._changed(
            "INSERT INTO discord_entitlements (id, sku_id, user_id, guild_id, type, deleted,"
            " consumed, ends_at, payload, first_seen_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " deleted = CASE WHEN excluded.deleted = 1 THEN 1"
            " ELSE discord_entitlements.deleted END,"
            " consumed = CASE WHEN excluded.consumed = 1 THEN 1"
            " ELSE discord_entitlements.consumed END,"
            " ends_at = CASE WHEN excluded.ends_at IS NULL THEN discord_entitlements.ends_at"
            " WHEN discord_entitlements.ends_at IS NULL"
            " OR excluded.ends_at > discord_entitlements.ends_at THEN excluded.ends_at"
            " ELSE discord_entitlements.ends_at END,"
            " payload = excluded.payload, updated_at = excluded.updated_at",
            (
                int(data["id"]),
                int(data["sku_id"]),
                int(data["user_id"]) if data.get("user_id") else None,
                int(data["guild_id"]) if data.get("guild_id") and not data.get("user_id") else None,
                int(data.get("type") or 0),
                int(bool(data.get("deleted"))),
                int(bool(data.get("consumed"))),
                ends,
                json.dumps(data, sort_keys=True),
                self.now_iso,
                self.now_iso,
            ),
        )
        merged = await self.entitlement(int(data["id"]))
        assert merged is not None
        return merged

    async def entitlement(self, entitlement_id: int) -> DiscordEntitlement | None:
        row = await self._one(_ENT + " WHERE id=?", (entitlement_id,))
        return None if row is None else _entitlement(row)

    async def entitlement_ids(self) -> list[int]:
        """Every entitlement we know of, oldest first."""
        return [
            int(row[0])
            for row in await self._all("SELECT id FROM discord_entitlements ORDER BY id")
        ]

    async def ending_between(self, after: datetime, until: datetime) -> list[int]:
        """Live entitlements whose `ends_at` falls in (after, until], oldest end first."""
        rows = await self._all(
            "SELECT id FROM discord_entitlements WHERE deleted=0 AND ends_at > ?"
            " AND ends_at <= ? ORDER BY ends_at, id",
            (opt_iso(after), opt_iso(until)),
        )
        return [int(row[0]) for row in rows]

    async def next_end(self, after: datetime) -> datetime | None:
        """The earliest `ends_at` of a live entitlement later than `after`."""
        row = await self._one(
            "SELECT MIN(ends_at) FROM discord_entitlements WHERE deleted=0 AND ends_at > ?",
            (opt_iso(after),),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def mark_consumed(self, entitlement_id: int) -> None:
        await self._changed(
            "UPDATE discord_entitlements SET consumed=1, updated_at=? WHERE id=?",
            (self.now_iso, entitlement_id),
        )

    async def guild_owned(self, guild_id: int) -> list[tuple[DiscordEntitlement, str]]:
        """The guild's own entitlements (server subscriptions) with their SKU's name."""
        rows = await self._all(
            "SELECT e.id, e.sku_id, e.user_id, e.guild_id, e.type, e.deleted, e.consumed,"
            " e.ends_at, COALESCE(l.sku_name, '?') FROM discord_entitlements e"
            " LEFT JOIN sku_links l ON l.guild_id = e.guild_id AND l.sku_id = e.sku_id"
            " WHERE e.guild_id=? ORDER BY e.id",
            (guild_id,),
        )
        return [(_entitlement(row), str(row[8])) for row in rows]

    # orders --------------------------------------------------------------------------

    async def order_of(self, entitlement_id: int, guild_id: int) -> int | None:
        row = await self._one(
            "SELECT order_id FROM sku_orders WHERE entitlement_id=? AND guild_id=?",
            (entitlement_id, guild_id),
        )
        return None if row is None else int(row[0])

    async def record_order(self, entitlement_id: int, guild_id: int, order_id: int) -> None:
        """The order this entitlement made in this guild. Raises Duplicate if it has one."""
        await self._changed(
            "INSERT INTO sku_orders (entitlement_id, guild_id, order_id) VALUES (?, ?, ?)",
            (entitlement_id, guild_id, order_id),
        )

    async def entitlement_of_order(self, order_id: int) -> int | None:
        row = await self._one("SELECT entitlement_id FROM sku_orders WHERE order_id=?", (order_id,))
        return None if row is None else int(row[0])
