"""Two languages (issue 12): every synced command localized in German, a complete message
catalogue, replies in the interaction's locale and DMs in the guild's."""

from __future__ import annotations

import re
import string
from typing import Any

import discord
import pytest
from discord.ext import commands

from bot import i18n
from bot.app import EXTENSIONS
from bot.errors import InvalidInput
from bot.money import format_price
from tests.i18n_strings import all_messages, load
from tests.unit.test_command_surface import PLACEHOLDER, walk
from tests.unit.world import BUYER, GUILD, World, add_product, buy

SECOND = "de"
#: Discord's rule for command and option names (any locale)
NAME = re.compile(r"^[-_'\w]{1,32}$")


async def translated_payload() -> list[dict[str, Any]]:
    """What `tree.sync` PUTs: every command through the tree's translator."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    translator = bot.tree.translator
    assert translator is not None, "no translator set on the tree"
    return [await c.get_translated_payload(bot.tree, translator) for c in bot.tree.get_commands()]


async def test_two_languages_every_synced_command_option_and_choice_is_localized() -> None:
    """Every command, group and option has a real description and German name and
    description localizations (valid for Discord); every choice a German name."""
    payload = await translated_payload()
    problems: list[str] = []
    for command in payload:
        for path, node in walk(command):
            description = (node.get("description") or "").strip()
            if not description or description == PLACEHOLDER:
                problems.append(f"{path}: no description")
            name = (node.get("name_localizations") or {}).get(SECOND)
            if not name or not NAME.match(name) or name != name.lower():
                problems.append(f"{path}: German name {name!r}")
            desc = (node.get("description_localizations") or {}).get(SECOND)
            if not desc or len(desc) > 100:
                problems.append(f"{path}: German description {desc!r}")
            for choice in node.get("choices") or []:
                if not (choice.get("name_localizations") or {}).get(SECOND):
                    problems.append(f"{path}: choice {choice['name']!r} not translated")
    assert problems == []


async def test_two_languages_localized_names_are_unique_among_siblings() -> None:
    """Two German subcommands or options of one command never share a name."""
    payload = await translated_payload()
    clashes = []
    for command in payload:
        for path, node in walk(command):
            names = [o["name_localizations"][SECOND] for o in node.get("options") or []]
            if len(names) != len(set(names)):
                clashes.append(path)
    assert clashes == []


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_two_languages_catalogue_is_complete_and_placeholders_match() -> None:
    """Every message in the code (`_()`, `N_()`) and every command string has a non-empty,
    non-fuzzy translation in each shipped language, with the same {placeholders}."""
    wanted = all_messages()
    assert len(wanted) > 150
    for lang in i18n.TRANSLATED:
        catalogue = load(lang)
        problems = []
        for (context, msgid), where in wanted.items():
            message = catalogue.get(msgid, context=context)
            if message is None or not message.string or message.fuzzy:
                problems.append(f"{where}: {msgid!r} has no {lang} translation")
            elif placeholders(str(message.string)) != placeholders(msgid):
                problems.append(f"{where}: {msgid!r}: placeholders differ in {lang}")
        assert problems == [], "run `python -m tests.i18n_strings`, then translate"


def test_two_languages_text_falls_back_to_english_and_prices_follow_the_locale() -> None:
    """`_()` speaks the current locale (unknown ones speak English); Stripe's minor units
    are only formatted differently."""
    with i18n.use_locale("de"):
        assert i18n._("Order #{order}.", order=7) == "Bestellung #7."
        assert format_price(499, "usd") == "4,99 $"
        assert format_price(500, "jpy") == "500 ¥"
    with i18n.use_locale("pt-BR"):
        assert i18n._("Order #{order}.", order=7) == "Order #7."
    assert format_price(499, "usd") == "4.99 USD"
    assert i18n.normalize("en-GB") == "en" and i18n.normalize("de") == "de"


async def test_two_languages_dm_in_guild_locale_after_settings_locale(world: World) -> None:
    """After `/shop settings locale de` the receipt DM is German with a German price; an
    unknown language is refused and changes nothing; clearing it goes back to English."""
    await add_product(world, "Gold")
    with pytest.raises(InvalidInput):
        await world.services.notices.set_locale(GUILD, 1, "klingon")
    assert world.rows("SELECT COUNT(*) FROM guild_locales") == [(0,)]
    assert await world.services.notices.set_locale(GUILD, 1, "de") == "de"
    await buy(world, "gold")
    await world.run_jobs()
    (dm,) = [text for who, text in world.discord.dms if who == BUYER]
    assert "Danke für deinen Kauf von **Gold** (4,99 $)." in dm
    assert "Alles wurde geliefert." in dm

    assert await world.services.notices.set_locale(GUILD, 1, None) == "en"
    await buy(world, "gold")
    await world.run_jobs()
    assert "Thank you for your purchase of **Gold** (4.99 USD)." in world.discord.dms[-1][1]


async def test_two_languages_guild_preferred_locale_is_the_default(world: World) -> None:
    """Without a choice, DMs follow the preferred locale Discord reports for the guild."""
    await world.services.notices.note_preferred_locale(GUILD, "de")
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    await world.run_jobs()
    world.stripe.refund(str(order.stripe_payment_intent_id))
    await world.flush()
    await world.run_jobs()
    texts = [text for who, text in world.discord.dms if who == BUYER]
    assert any("Danke für deinen Kauf" in t for t in texts)
    assert any(
        f"Deine Bestellung #{order.id} für **Gold** wurde erstattet (4,99 $)" in t for t in texts
    )


async def test_two_languages_log_channel_speaks_the_guild_language(world: World) -> None:
    """With the guild set to German, a burst summary in the log channel is German, with
    German totals."""
    await add_product(world, "Gold")
    assert await world.services.notices.set_locale(GUILD, 1, "de") == "de"
    await world.services.notices.set_log_channel(GUILD, 1, 777)
    for user in range(1000, 1010):
        await buy(world, "gold", user=user)
    await world.run_jobs()
    world.advance(seconds=16)
    await world.run_jobs()
    text = "\n".join(content for _, content, _ in world.discord.posts)
    assert "hat diesen Kanal für das Log des Shops gewählt" in text
    assert "**10 Verkäufe** · 49,90 $ gesamt seit" in text
    assert "💰 Verkauf: **Gold** (4,99 $) gekauft von <@1000>" in text


async def test_two_languages_panel_speaks_the_guild_language(world: World) -> None:
    """A panel posted for a German guild shows German field names, price and Buy button."""
    await add_product(world, "Gold")
    await world.services.notices.set_locale(GUILD, 1, "de")
    panel = await world.services.panels.post(GUILD, 1, 4242, None, None)
    body = world.discord.messages[panel.message_id][1]
    (embed,) = body["embeds"]
    assert {"name": "Preis", "value": "4,99 $", "inline": True} in embed["fields"]
    assert body["components"][0]["components"][0]["label"] == "Gold kaufen"
