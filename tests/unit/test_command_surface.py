"""The synced command payload reads well: every command and option described, readable choices."""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

from bot.app import EXTENSIONS

#: What discord.py writes when a command or option has no description.
PLACEHOLDER = "…"


async def synced_payload() -> list[dict[str, Any]]:
    """Load every cog into a bot that never connects; return what `tree.sync` would send."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    for extension in EXTENSIONS:
        await bot.load_extension(extension)
    return [command.to_dict(bot.tree) for command in bot.tree.get_commands()]


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every command, group, subcommand and option in the payload, with its path."""
    here = f"{path} {node['name']}".strip()
    found = [(here, node)]
    for option in node.get("options") or []:
        found += walk(option, here)
    return found


async def test_readable_admin_surface_every_option_has_a_description() -> None:
    """No command or option shows discord.py's "…" placeholder (or an empty description)."""
    payload = await synced_payload()
    names = {c["name"] for c in payload}
    assert {"buy", "claim", "purchases", "manage", "help", "shop"} <= names
    missing = [
        path
        for command in payload
        for path, node in walk(command)
        if not (node.get("description") or "").strip() or node["description"] == PLACEHOLDER
    ]
    assert missing == []


async def test_readable_admin_surface_choices_have_human_names() -> None:
    """Choices show words ("On chargeback"), their values stay the SPEC's (on_chargeback)."""
    payload = await synced_payload()
    choices = [
        (path, choice)
        for command in payload
        for path, node in walk(command)
        for choice in node.get("choices") or []
    ]
    assert choices, "no choices at all"
    raw = [(path, c["name"]) for path, c in choices if "_" in c["name"] or c["name"].islower()]
    assert raw == []
    stage = {c["value"]: c["name"] for path, c in choices if path == "shop action add stage"}
    assert stage == {
        "on_purchase": "On purchase",
        "on_expire": "On expiry",
        "on_refund": "On refund",
        "on_chargeback": "On chargeback",
    }
