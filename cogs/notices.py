"""Buttons under the bot's own notices: Retry in the admin log, Manage in a failed-renewal DM.

Both are DynamicItems (custom_ids `shop:retry:<job>`, `shop:manage:<guild>`), so a message
posted before a restart still works after it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import i18n
from bot.errors import Forbidden
from bot.i18n import N_, _
from bot.notices import MANAGE_LABEL
from cogs._ui import reply
from cogs.admin import is_shop_admin
from cogs.errors import report_error

if TYPE_CHECKING:
    from bot.app import ShopBot


class RetryButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"shop:retry:(?P<job>[0-9]{1,20})",
):
    """Re-queue a failed delivery, like `/shop retry <job>`; shop admins only, checked here
    at press time (anyone who can read the log channel can press it)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=_("Retry job #{job}", job=job_id), custom_id=f"shop:retry:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button,  # type: ignore[override]
        match: re.Match[str],
    ) -> RetryButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: ShopBot = interaction.client  # type: ignore[assignment]
        try:
            i18n.set_locale(interaction.locale.value)  # a component: not through the tree
            if interaction.guild_id is None or not is_shop_admin(
                interaction, bot.settings.discord.admin_role_ids
            ):
                raise Forbidden(N_("Only server admins (Manage Server) can retry deliveries."))
            count = await bot.admin_ops.retry_jobs(
                interaction.guild_id, interaction.user.id, str(self.job_id)
            )
            await reply(
                interaction,
                _("Retrying job #{job} ({count} queued).", job=self.job_id, count=count),
            )
        except Exception as exc:  # a component's errors never reach the tree's handler
            await report_error(interaction, exc)


class ManageButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"shop:manage:(?P<guild>[0-9]{1,20})",
):
    """`/manage` from a DM: a Stripe billing portal link for the member's subscriptions."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(
            discord.ui.Button(label=_(MANAGE_LABEL), custom_id=f"shop:manage:{guild_id}")
        )
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button,  # type: ignore[override]
        match: re.Match[str],
    ) -> ManageButton:
        return cls(int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: ShopBot = interaction.client  # type: ignore[assignment]
        try:
            i18n.set_locale(interaction.locale.value)
            await interaction.response.defer(ephemeral=True, thinking=True)
            url = await bot.admin_ops.portal(self.guild_id, interaction.user.id)
            view = discord.ui.View(timeout=None)
            view.add_item(discord.ui.Button(label=_("Open the billing portal"), url=url))
            await reply(interaction, _("Update your card or cancel here:"), view=view)
        except Exception as exc:
            await report_error(interaction, exc)


class Notices(commands.Cog):
    def __init__(self, bot: ShopBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RetryButton, ManageButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(RetryButton, ManageButton)


async def setup(bot: ShopBot) -> None:
    await bot.add_cog(Notices(bot))
