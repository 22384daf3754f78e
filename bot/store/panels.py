"""Shop panels: which message shows which products, and a change counter per panel."""

from __future__ import annotations

from bot.models import Panel
from bot.store.base import Repo


class PanelRepo(Repo):
    """Panel messages per guild; their product lists keep the order they were posted in."""

    async def add(
        self,
        *,
        guild_id: int,
        channel_id: int,
        message_id: int,
        title: str,
        product_ids: list[int],
        created_by: int | None,
    ) -> Panel:
        """Store a posted panel; raises Duplicate if that message is already one."""
        panel_id = await self._insert(
            "INSERT INTO shop_panels (guild_id, channel_id, message_id, title, created_by,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, channel_id, message_id, title, created_by, self.now_iso, self.now_iso),
        )
        for position, product_id in enumerate(product_ids):
            await self._changed(
                "INSERT INTO shop_panel_products (panel_id, product_id, position) VALUES (?, ?, ?)",
                (panel_id, product_id, position),
            )
        panel = await self.get(panel_id)
        assert panel is not None
        return panel

    async def get(self, panel_id: int) -> Panel | None:
        row = await self._one("SELECT * FROM shop_panels WHERE id=?", (panel_id,))
        if row is None:
            return None
        products = await self._all(
            "SELECT product_id FROM shop_panel_products WHERE panel_id=? ORDER BY position",
            (panel_id,),
        )
        return Panel(
            id=row["id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            message_id=row["message_id"],
            title=row["title"],
            version=row["version"],
            product_ids=tuple(int(p[0]) for p in products),
        )

    async def by_message(self, guild_id: int, message_id: int) -> Panel | None:
        """The guild's panel shown in that message (None for another guild's, or none)."""
        row = await self._one(
            "SELECT id FROM shop_panels WHERE guild_id=? AND message_id=?", (guild_id, message_id)
        )
        return None if row is None else await self.get(int(row[0]))

    async def containing(self, product_id: int) -> list[Panel]:
        """Every panel that shows the product, oldest first."""
        rows = await self._all(
            "SELECT panel_id FROM shop_panel_products WHERE product_id=? ORDER BY panel_id",
            (product_id,),
        )
        panels = [await self.get(int(row[0])) for row in rows]
        return [p for p in panels if p is not None]

    async def touch(self, panel_id: int) -> None:
        """Something the panel shows changed: count it (an edit in flight then goes again)."""
        await self._changed(
            "UPDATE shop_panels SET version = version + 1, updated_at=? WHERE id=?",
            (self.now_iso, panel_id),
        )

    async def forget(self, panel_id: int) -> bool:
        """Drop the panel (and its product list); False if it was already gone."""
        return bool(await self._changed("DELETE FROM shop_panels WHERE id=?", (panel_id,)))
