"""The language of each guild's DMs, panels and log notices (`guild_locales`, migration 0015)."""

from __future__ import annotations

from bot.store.base import Repo


class LocaleRepo(Repo):
    """What an admin chose with `/shop settings locale`, and the guild's preferred locale."""

    caches_reads = True  # `of`: every DM and log line of an inbox batch renders in it

    async def of(self, guild_id: int) -> str | None:
        """The chosen locale, else the guild's preferred one (None: neither is known)."""
        return await self._cached(("locale", guild_id), lambda: self._of(guild_id))

    async def _of(self, guild_id: int) -> str | None:
        row = await self._one(
            "SELECT chosen, preferred FROM guild_locales WHERE guild_id=?", (guild_id,)
        )
        if row is None:
            return None
        return row[0] or row[1]

    async def chosen(self, guild_id: int) -> str | None:
        row = await self._one("SELECT chosen FROM guild_locales WHERE guild_id=?", (guild_id,))
        return None if row is None else row[0]

    async def choose(self, guild_id: int, locale: str | None, actor_id: int) -> None:
        """Set (or with None, clear) the admin's choice; the preferred locale is kept."""
        await self._changed(
            "INSERT INTO guild_locales (guild_id, chosen, set_by, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET chosen=excluded.chosen,"
            " set_by=excluded.set_by, updated_at=excluded.updated_at",
            (guild_id, locale, actor_id, self.now_iso),
        )

    async def set_preferred(self, guild_id: int, locale: str) -> bool:
        """Record what Discord says the guild prefers; False when it was already that."""
        return bool(
            await self._changed(
                "INSERT INTO guild_locales (guild_id, preferred, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET preferred=excluded.preferred,"
                " updated_at=excluded.updated_at"
                " WHERE guild_locales.preferred IS NULL OR guild_locales.preferred<>?",
                (guild_id, locale, self.now_iso, locale),
            )
        )
