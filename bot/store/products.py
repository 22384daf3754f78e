"""Products, their actions and license keys."""

from __future__ import annotations

import builtins
from typing import Any

from bot.models import Action, Product
from bot.store.base import Repo

_EDITABLE = {
    "name",
    "description",
    "price_amount",
    "stock",
    "active",
    "stripe_price_id",
    "image_url",
    "allow_promotion_codes",
}
#: Columns a caller may set on insert; anything else is refused before SQL is built.
_PRODUCT_FIELDS = _EDITABLE | {
    "max_devices",
    "guild_id",
    "currency",
    "kind",
    "interval",
    "duration_days",
    "trial_days",
    "allow_promotion_codes",
}
_ACTION_FIELDS = {"type", "stage", "role_id", "channel_id", "message", "revoke_on"}


def _only(fields: set[str], values: dict[str, Any], what: str) -> None:
    unknown = set(values) - fields
    if unknown:
        raise ValueError(f"{what}: not settable: {sorted(unknown)}")


class ProductRepo(Repo):
    """Catalog per guild. Names are unique (case-insensitively) among live products."""

    caches_reads = True  # `get` and `actions`: every event of a batch asks for them

    async def add(self, **values: Any) -> Product:
        """Insert a product; raises Duplicate on a duplicate live name."""
        _only(_PRODUCT_FIELDS, values, "product")
        values = {**values, "name_key": values["name"].casefold()}
        values.update(created_at=self.now_iso, updated_at=self.now_iso)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        new_id = await self._insert(
            f"INSERT INTO products ({columns}) VALUES ({marks})",  # noqa: S608 - fixed keys
            tuple(values.values()),
        )
        product = await self.get(new_id)
        assert product is not None
        return product

    async def get(self, product_id: int) -> Product | None:
        return await self._cached(("product", product_id), lambda: self._get(product_id))

    async def _get(self, product_id: int) -> Product | None:
        row = await self._one("SELECT * FROM products WHERE id=?", (product_id,))
        return None if row is None else Product.from_row(row)

    async def by_name(self, guild_id: int, name: str) -> Product | None:
        """Live (not archived) product by case-insensitive name."""
        row = await self._one(
            "SELECT * FROM products WHERE guild_id=? AND name_key=? AND archived=0",
            (guild_id, name.casefold()),
        )
        return None if row is None else Product.from_row(row)

    async def list(self, guild_id: int, *, active_only: bool = False) -> list[Product]:
        """Live products of a guild, by name; archived ones are never listed."""
        sql = "SELECT * FROM products WHERE guild_id=? AND archived=0"
        if active_only:
            sql += " AND active=1"
        rows = await self._all(sql + " ORDER BY name_key", (guild_id,))
        return [Product.from_row(row) for row in rows]

    async def live_in_every_guild(self) -> builtins.list[Product]:
        """Live (not archived, active or not) products of every guild, by guild and name."""
        rows = await self._all(
            "SELECT * FROM products WHERE archived=0 ORDER BY guild_id, name_key"
        )
        return [Product.from_row(row) for row in rows]

    async def update(self, product_id: int, **changes: Any) -> Product:
        """Change editable fields; raises Duplicate on a duplicate name."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "name" in changes:
            changes["name_key"] = changes["name"].casefold()
        changes["updated_at"] = self.now_iso
        assignments = ", ".join(f"{column}=?" for column in changes)
        await self._changed(
            f"UPDATE products SET {assignments} WHERE id=?",  # noqa: S608 - fixed keys
            (*changes.values(), product_id),
        )
        product = await self.get(product_id)
        assert product is not None
        return product

    async def archive(self, product_id: int) -> None:
        """Hide the product for good; orders and entitlements keep pointing at it."""
        await self._changed(
            "UPDATE products SET archived=1, active=0, updated_at=? WHERE id=?",
            (self.now_iso, product_id),
        )

    async def take_stock(self, product_id: int) -> bool:
        """Decrement limited stock by one; False when none is left (unlimited → True).

        One conditional UPDATE, so two buyers racing for the last unit cannot both get it.
        """
        changed = await self._changed(
            "UPDATE products SET stock = stock - 1 WHERE id=? AND stock IS NOT NULL AND stock > 0",
            (product_id,),
        )
        if changed:
            return True
        row = await self._one("SELECT stock FROM products WHERE id=?", (product_id,))
        return row is not None and row[0] is None

    async def return_stock(self, product_id: int) -> None:
        """Give back one unit reserved by an order that was never paid."""
        await self._changed(
            "UPDATE products SET stock = stock + 1 WHERE id=? AND stock IS NOT NULL", (product_id,)
        )

    async def delivers_licenses(self, product_id: int) -> bool:
        """Whether a purchase of the product hands out a license key (a live on_purchase
        deliver_license action): then its free keys limit how many can be sold."""
        row = await self._one(
            "SELECT 1 FROM actions WHERE product_id=? AND type='deliver_license'"
            " AND stage='on_purchase' AND removed=0 LIMIT 1",
            (product_id,),
        )
        return row is not None

    async def units_left(self, product_id: int) -> int | None:
        """How many more can be sold now (None = unlimited): the stock left, and for a
        product that delivers license keys no more than its free (unreserved) keys."""
        row = await self._one("SELECT stock FROM products WHERE id=?", (product_id,))
        left = None if row is None or row[0] is None else int(row[0])
        if await self.delivers_licenses(product_id):
            keys = await self.free_licenses(product_id)
            left = keys if left is None else min(left, keys)
        return left

    # actions -------------------------------------------------------------------------

    async def add_action(self, product_id: int, **values: Any) -> Action:
        _only(_ACTION_FIELDS, values, "action")
        values = {"product_id": product_id, **values, "created_at": self.now_iso}
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        new_id = await self._insert(
            f"INSERT INTO actions ({columns}) VALUES ({marks})",  # noqa: S608 - fixed keys
            tuple(values.values()),
        )
        row = await self._one("SELECT * FROM actions WHERE id=?", (new_id,))
        return Action.from_row(row)

    async def actions(self, product_id: int, stage: str | None = None) -> builtins.list[Action]:
        """Live actions of a product (optionally of one stage), oldest first."""
        key = ("actions", product_id, stage)
        return list(await self._cached(key, lambda: self._actions(product_id, stage)))

    async def _actions(self, product_id: int, stage: str | None) -> tuple[Action, ...]:
        sql = "SELECT * FROM actions WHERE product_id=? AND removed=0"
        params: tuple[Any, ...] = (product_id,)
        if stage is not None:
            sql += " AND stage=?"
            params += (stage,)
        return tuple(Action.from_row(row) for row in await self._all(sql + " ORDER BY id", params))

    async def role_actions_of_guild(self, guild_id: int) -> builtins.list[Action]:
        """Every live grant_role action of the guild's live products."""
        rows = await self._all(
            "SELECT a.* FROM actions a JOIN products p ON p.id = a.product_id "
            "WHERE p.guild_id=? AND a.removed=0 AND a.type='grant_role'",
            (guild_id,),
        )
        return [Action.from_row(row) for row in rows]

    async def grant_role_actions(self, product_id: int) -> builtins.list[Action]:
        """Every grant_role action the product ever had, removed ones included (a role given
        before its action was removed is still taken back), oldest first."""
        rows = await self._all(
            "SELECT * FROM actions WHERE product_id=? AND type='grant_role' AND role_id IS NOT NULL"
            " ORDER BY id",
            (product_id,),
        )
        return [Action.from_row(row) for row in rows]

    async def action_in_guild(self, action_id: int, guild_id: int) -> Action | None:
        """A live action of one of the guild's products, or None."""
        row = await self._one(
            "SELECT a.* FROM actions a JOIN products p ON p.id = a.product_id"
            " WHERE a.id=? AND p.guild_id=? AND a.removed=0",
            (action_id, guild_id),
        )
        return None if row is None else Action.from_row(row)

    async def remove_action(self, action_id: int) -> None:
        """Soft-delete: jobs already queued keep pointing at it."""
        await self._changed("UPDATE actions SET removed=1 WHERE id=?", (action_id,))

    # license keys --------------------------------------------------------------------

    async def add_license_key(self, product_id: int, key: str) -> bool:
        """Store a key; False if the product already has it."""
        changed = await self._changed(
            "INSERT INTO license_keys (product_id, key, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (product_id, key) DO NOTHING",
            (product_id, key, self.now_iso),
        )
        return changed > 0

    async def reserve_license(self, product_id: int, order_id: int) -> bool:
        """Set aside the oldest free key for an order at checkout (not delivered yet).

        True if the order holds a key now (already had one, or got one); False if none is
        free. One conditional UPDATE, and `license_keys.order_id` is unique, so two
        checkouts never hold the same key.
        """
        row = await self._one("SELECT 1 FROM license_keys WHERE order_id=?", (order_id,))
        if row is not None:
            return True
        return (
            await self._changed(
                "UPDATE license_keys SET order_id=? WHERE id = (SELECT id FROM license_keys"
                " WHERE product_id=? AND order_id IS NULL ORDER BY id LIMIT 1)",
                (order_id, product_id),
            )
            > 0
        )

    async def release_license(self, order_id: int) -> None:
        """An unpaid order gives back the key it held, unless that key was delivered."""
        await self._changed(
            "UPDATE license_keys SET order_id=NULL WHERE order_id=? AND delivered_at IS NULL",
            (order_id,),
        )

    async def assign_license(self, product_id: int, order_id: int) -> str | None:
        """The order's key, marked delivered: the one it holds (reserved at checkout or
        delivered before), else the oldest free one (None if none is free).

        `license_keys.order_id` is unique, so a key is handed out exactly once.
        """
        if not await self.reserve_license(product_id, order_id):
            return None
        await self._changed(
            "UPDATE license_keys SET delivered_at=? WHERE order_id=? AND delivered_at IS NULL",
            (self.now_iso, order_id),
        )
        row = await self._one("SELECT key FROM license_keys WHERE order_id=?", (order_id,))
        return None if row is None else str(row[0])

    async def free_licenses(self, product_id: int) -> int:
        """Keys neither delivered nor held by an open checkout."""
        row = await self._one(
            "SELECT COUNT(*) FROM license_keys WHERE product_id=? AND order_id IS NULL",
            (product_id,),
        )
        return int(row[0]) if row else 0
