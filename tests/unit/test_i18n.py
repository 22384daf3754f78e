"""Two languages (issue 12): every synced command localized in German, a complete message
catalogue, replies in the interaction's locale and DMs in the guild's."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.ext import commands

from bot import i18n
from bot.app import EXTENSIONS
from bot.errors import InvalidInput, NotFound
from bot.money import format_price
from tests.i18n_strings import all_messages, load
from tests.unit.test_command_surface import PLACEHOLDER, walk
from tests.unit.world import BUYER, GUILD, World, add_product, buy

ROOT = Path(__file__).resolve().parents[2]
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


#: What a reader sees, by call: keyword arguments (`None`: any call) and the positional
#: argument that is the message content.
SHOWN_KEYWORDS: dict[str, set[str]] = {
    "Embed": {"title", "description"},
    "add_field": {"name"},
    "set_footer": {"text"},
    "set_author": {"name"},
    "Button": {"label"},
    "Select": {"placeholder"},
    "SelectOption": {"label", "description"},
    "TextInput": {"label", "placeholder"},
    "Modal": {"title"},
}
#: Replies: the index of the positional argument that is the content.
SHOWN_POSITIONAL = {
    "send_message": 0,
    "send": 0,
    "edit_original_response": 0,
    "edit_message": 0,
    "reply": 1,  # cogs/_ui.py reply(interaction, content)
}
#: Errors shown to the user (their message is translated when shown: wrap it in `N_()`).
SHOWN_ERRORS = {"InvalidInput", "NotFound", "Forbidden", "Conflict", "TooManyAttempts"}
SENTENCE = re.compile(r"[A-Za-z]{2,}.* |.* [A-Za-z]{2,}")
#: (file, text) pairs that are meant to stay as written, with the reason.
EXEMPT: set[tuple[str, str]] = set()


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _english_literals(node: ast.expr) -> list[str]:
    """Sentences written straight into `node` (not through `_()`/`N_()`/any call, which
    renders or looks them up): literals, f-strings, and the branches of `+`, `or`, `x if c
    else y` around them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if SENTENCE.search(node.value) else []
    if isinstance(node, ast.JoinedStr):
        fixed = "".join(
            part.value
            for part in node.values
            if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
        return [fixed] if SENTENCE.search(fixed) else []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _english_literals(node.left) + _english_literals(node.right)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _english_literals(value)]
    if isinstance(node, ast.IfExp):
        return _english_literals(node.body) + _english_literals(node.orelse)
    return []


def english_only_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every English sentence a cog shows a reader without the catalogue."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        shown: list[ast.expr] = []
        if isinstance(node, ast.Call):
            name = _callee(node)
            keywords = SHOWN_KEYWORDS.get(name, set()) | {"content"}
            shown += [k.value for k in node.keywords if k.arg in keywords]
            index = SHOWN_POSITIONAL.get(name)
            if index is not None and len(node.args) > index:
                shown.append(node.args[index])
            if name in SHOWN_ERRORS and node.args:
                shown.append(node.args[0])
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in ("title", "description"):
                    shown.append(node.value)
        found += [(n.lineno, text) for n in shown for text in _english_literals(n)]
    return sorted(found)


def test_two_languages_no_english_only_reply_strings() -> None:
    """No cog shows a reader an English sentence that bypasses the catalogue: replies,
    embed titles, descriptions, field names and footers, button labels, select
    placeholders, modal titles and the errors raised to the user go through `_()` (or
    `N_()` for errors, translated when shown). Names and descriptions of commands are the
    Translator's (not checked here); custom_ids and values are not sentences."""
    problems = []
    for path in sorted((ROOT / "cogs").glob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, text in english_only_texts(path.read_text()):
            if (rel, text) not in EXEMPT:
                problems.append(f"{rel}:{line}: {text!r}")
    assert problems == []


def test_two_languages_guard_sees_the_ways_a_reply_is_written() -> None:
    """The guard above flags each way an English-only reply is written, and not the
    catalogue's calls, identifiers or the Translator's command strings."""
    flagged = english_only_texts(
        "async def f(interaction, n):\n"
        "    await reply(interaction, 'No orders match.')\n"
        "    await reply(interaction, f'Retrying {n} job(s).')\n"
        "    await reply(interaction, x or 'No actions.')\n"
        "    await interaction.response.send_message('Nothing to see here', ephemeral=True)\n"
        "    await interaction.followup.send(content='Update your card here:')\n"
        "    embed = discord.Embed(title='Your purchases', description='You have nothing')\n"
        "    embed.add_field(name='Your access', value='x')\n"
        "    embed.description = 'You have not bought anything.'\n"
        "    discord.ui.Button(label='Pay with Stripe', custom_id='shop:pay:1')\n"
        "    raise InvalidInput('Pick a channel of this server.')\n"
    )
    assert [line for line, _ in flagged] == [2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11]
    assert not english_only_texts(
        "@app_commands.command(name='buy', description='Buy a product from this shop')\n"
        "async def f(interaction, n):\n"
        "    await reply(interaction, _('No orders match.'))\n"
        "    await reply(interaction, _('Retrying {count} job(s).', count=n))\n"
        "    await reply(interaction, text)\n"
        "    discord.ui.Button(label=_('Buy'), custom_id=f'shop:buy:{n}')\n"
        "    embed.add_field(name=_('Price'), value=f'#{n}')\n"
        "    raise InvalidInput(N_('Pick a channel of this server.'))\n"
        "    app_commands.Choice(name='Deutsch (German)', value='de')\n"
    )


async def test_two_languages_error_is_translated_when_shown_not_when_raised(
    world: World,
) -> None:
    """A service's refusal carries its English text and values; it is rendered in the
    locale of whoever reads it (a German admin's reply), and logs see English."""
    await add_product(world, "Gold")
    with pytest.raises(NotFound) as caught:
        await world.shop.remove_product(GUILD, 1, "Platin")
    error = caught.value
    assert str(error) == "There is no product called `Platin` here."
    with i18n.use_locale("de"):
        assert error.user_message == "Hier gibt es kein Produkt namens `Platin`."
    assert error.user_message == "There is no product called `Platin` here."
    with pytest.raises(InvalidInput) as bad_price:
        await world.shop.edit_product(GUILD, 1, "gold", price="4.999")
    with i18n.use_locale("de"):
        assert bad_price.value.user_message == (
            "USD-Preise haben höchstens 2 Nachkommastellen; `4.999` hat mehr."
        )
