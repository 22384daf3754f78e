"""Two languages on Discord's side: command names and descriptions through discord.py's
Translator (the synced payload carries `name_localizations`/`description_localizations`),
and every interaction's replies rendered in `interaction.locale`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where
from discord.ext import commands

from bot import i18n

#: Names (commands, groups, options) follow Discord's name rules, so they have their own
#: msgctxt in the catalogue; descriptions and choice names are plain messages.
NAMES = (Where.command_name, Where.group_name, Where.parameter_name)


class CatalogueTranslator(app_commands.Translator):
    """Looks each command string up in bot/locales; None (Discord shows English) otherwise."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        lang = i18n.normalize(locale.value)
        if lang == i18n.SOURCE:
            return None
        where = i18n.NAME_CONTEXT if context.location in NAMES else None
        return i18n.lookup(lang, string.message, context=where)


async def speak_their_language(interaction: discord.Interaction) -> bool:
    """Every command's replies in the caller's Discord language (the tree's global check;
    the locale lives in this interaction's task, so the error handler sees it too)."""
    i18n.set_locale(interaction.locale.value)
    return True


async def setup(bot: commands.Bot) -> None:
    await bot.tree.set_translator(CatalogueTranslator())
    bot.tree.interaction_check = speak_their_language  # type: ignore[method-assign]
