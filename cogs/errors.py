"""One place mapping errors from app commands to ephemeral replies."""

from __future__ import annotations

import logging
import math
import secrets

import discord
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.errors import ShopError
from bot.i18n import _
from cogs._ui import reply

log = logging.getLogger(__name__)


class NotShopAdmin(app_commands.CheckFailure):
    """The caller lacks Manage Server and every configured admin role."""


async def on_app_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    await report_error(interaction, error)


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Tell the user, ephemerally, what went wrong (commands and components alike), in
    their language."""
    i18n.set_locale(interaction.locale.value)
    original = getattr(error, "original", error)
    if isinstance(original, ShopError):
        message = original.user_message
    elif isinstance(error, NotShopAdmin):
        message = _("Only server admins (Manage Server) can use `/shop`.")
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = _("This command only works inside a server.")
    elif isinstance(error, app_commands.TransformerError):
        message = _("`{value}` is not a valid value for that option.", value=str(error.value)[:50])
    elif isinstance(error, app_commands.CommandOnCooldown):
        seconds = max(1, math.ceil(error.retry_after))
        name = getattr(interaction.command, "qualified_name", "this command")
        message = (
            _("You are using `/{command}` too fast; try again in 1 second.", command=name)
            if seconds == 1
            else _(
                "You are using `/{command}` too fast; try again in {seconds} seconds.",
                command=name,
                seconds=seconds,
            )
        )
    elif isinstance(error, app_commands.CheckFailure):
        message = _("You cannot use this command here.")
    else:
        code = secrets.token_hex(3).upper()
        log.error(
            "command %s failed [%s]",
            getattr(interaction.command, "qualified_name", "?"),
            code,
            exc_info=original,
        )
        message = _(
            "Something went wrong on our side (error {code}); nothing was charged.", code=code
        )
    try:
        await reply(interaction, message)
    except discord.HTTPException:
        log.warning("could not tell the user about an error (interaction expired?)")


async def setup(bot: commands.Bot) -> None:
    bot.tree.on_error = on_app_command_error  # type: ignore[method-assign]  # documented hook
