"""Gateway listeners: a member joins (or finishes screening) → their access comes back;
Discord's entitlement events → bot/skus.py."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import ShopBot

log = logging.getLogger(__name__)


class Members(commands.Cog):
    def __init__(self, bot: ShopBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Every READY (start, or a session Discord invalidated): events may have been missed."""
        products = await self.bot.shop.count_products()
        servers = len(self.bot.guilds)
        log.info(
            "ready as %s in %d server%s, %d product%s, web on :%d",
            self.bot.user, servers, "" if servers == 1 else "s",
            products, "" if products == 1 else "s", self.bot.settings.http.port,
        )  # fmt: skip
        self.bot.background.start(self.bot.reconcile_all(), name="reconcile-on-ready")

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """GUILD_CREATE: keep the guild's preferred locale, the default language of its DMs,
        panels and log notices (`/shop settings locale` overrides it)."""
        await self.bot.services.notices.note_preferred_locale(
            guild.id, guild.preferred_locale.value
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.on_guild_available(guild)

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if member.bot:
            return
        await self.bot.members_service.member_joined(member.guild.id, member.id, member.pending)

    @commands.Cog.listener()
    async def on_raw_member_update(self, guild_id: int, user_id: int, pending: bool) -> None:
        """Dispatched by ShopBot for every GUILD_MEMBER_UPDATE (see app.py)."""
        if not pending:
            await self.bot.members_service.member_screened(guild_id, user_id)

    @commands.Cog.listener()
    async def on_raw_entitlement(self, event: str, data: dict[str, Any]) -> None:
        """Dispatched by ShopBot for ENTITLEMENT_CREATE/UPDATE/DELETE (see app.py)."""
        await self.bot.services.skus.receive(data, event)


async def setup(bot: ShopBot) -> None:
    await bot.add_cog(Members(bot))
