"""Every English string the catalogue must translate: `_()`/`N_()` texts in bot/ and cogs/,
and every command, group, option and choice of the command tree.

`python -m tests.i18n_strings` adds the missing ones to each language's .po file (empty, to
be translated) and lists them; tests/unit/test_i18n.py fails while any is untranslated.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import discord
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.app import EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None}
Key = tuple[str | None, str]  # (msgctxt, msgid)


def code_messages() -> dict[Key, str]:
    """`_("…")` and `N_("…")` in bot/ and cogs/ → where the first one is."""
    found: dict[Key, str] = {}
    for folder in ("bot", "cogs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, msgid, _comments, context in extract_from_file(
                "python", path, keywords=KEYWORDS
            ):
                if isinstance(msgid, str):
                    found.setdefault((context, msgid), f"{path.relative_to(ROOT)}:{line}")
    return found


def _message(value: object) -> str | None:
    if isinstance(value, app_commands.locale_str):
        return value.message
    return value if isinstance(value, str) else None


async def command_messages() -> dict[Key, str]:
    """Every name (msgctxt `command`), description and choice name of the command tree."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    found: dict[Key, str] = {}
    name = i18n.NAME_CONTEXT
    for command in bot.tree.walk_commands():
        where = f"/{command.qualified_name}"
        found.setdefault(
            (name, command._locale_name.message if command._locale_name else command.name), where
        )
        found.setdefault(
            (None, _message(command._locale_description) or command.description), where
        )
        if isinstance(command, app_commands.Command):
            for param in command.parameters:
                found.setdefault(
                    (name, param.locale_name.message if param.locale_name else param.name), where
                )
                found.setdefault(
                    (
                        None,
                        param.locale_description.message
                        if param.locale_description
                        else param.description,
                    ),
                    where,
                )
                for choice in param.choices:
                    found.setdefault((None, choice.name), f"{where} {param.name}")
    await bot.close()
    return found


def all_messages() -> dict[Key, str]:
    return {**code_messages(), **asyncio.run(command_messages())}


def load(lang: str) -> Catalog:
    with i18n.catalogue_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=i18n.DOMAIN)


def main() -> int:
    wanted = all_messages()
    for lang in i18n.TRANSLATED:
        path = i18n.catalogue_path(lang)
        catalogue = load(lang) if path.exists() else Catalog(locale=lang, domain=i18n.DOMAIN)
        missing = [key for key in wanted if catalogue.get(key[1], context=key[0]) is None]
        for context, msgid in missing:
            catalogue.add(msgid, "", locations=[(wanted[(context, msgid)], None)], context=context)
            print(f"{lang}: add {msgid!r}" + (f" ({context})" if context else ""))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, catalogue, width=100, omit_header=False, sort_output=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
