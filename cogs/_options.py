"""Readable option choices and the admin product autocomplete for the /shop commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice

from bot import i18n
from bot.i18n import N_, _

if TYPE_CHECKING:
    from bot.app import ShopBot


def choices(**names: str) -> list[Choice[str]]:
    """`on_chargeback="On chargeback"` → a choice showing words, sending SPEC's value."""
    return [Choice(name=name, value=value) for value, name in names.items()]


KINDS = choices(one_time="One-time purchase", timed="Timed access", subscription="Subscription")
INTERVALS = choices(day="Daily", week="Weekly", month="Monthly", year="Yearly")
ACTION_TYPES = choices(
    grant_role="Give a role",
    send_message="Send a message",
    deliver_license="Deliver a license key",
    kick="Kick from the server",
    ban="Ban from the server",
    create_invite="Create an invite",
)
STAGES = choices(
    on_purchase="On purchase",
    on_expire="On expiry",
    on_refund="On refund",
    on_chargeback="On chargeback",
)
JOB_STATUSES = choices(
    pending="Waiting",
    running="Running now",
    completed="Done",
    failed="Failed",
    canceled="Canceled",
    expired="Expired",
)
ORDER_STATUSES = choices(
    pending="Awaiting payment",
    paid="Paid",
    expired="Checkout expired",
    failed="Payment failed",
    refunded="Refunded",
    disputed="Disputed (chargeback)",
)
PERIODS = choices(**{"7d": "Last 7 days", "30d": "Last 30 days", "all": "All time"})

#: How the history and the queue name things (fallback: the raw value, underscores as spaces).
ACTION_NAMES = {c.value: c.name for c in ACTION_TYPES} | {
    "revoke_role": N_("Take a role back"),
    "receipt": N_("Receipt DM"),
    "gift": N_("Gift DM"),
    "notice": N_("Notice DM"),
}
STAGE_NAMES = {c.value: c.name for c in STAGES}
ORDER_NAMES = {c.value: c.name for c in ORDER_STATUSES}
JOB_NAMES = {c.value: c.name for c in JOB_STATUSES}


def readable(value: str, names: dict[str, str]) -> str:
    """The human name of a SPEC value, in the current locale (choice names are catalogue
    messages too)."""
    name = names.get(value)
    return _(name) if name else value.replace("_", " ").capitalize()


def in_sentence(name: str) -> str:
    """A readable name inside a sentence: lower case in English; German keeps its nouns'
    capitals."""
    return name.lower() if i18n.current() == i18n.SOURCE else name


async def admin_product_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Every live product of this guild, paused ones too (marked), whose name contains what
    was typed: admins edit, grant and restock products that are not for sale."""
    bot: ShopBot = interaction.client  # type: ignore[assignment]
    i18n.set_locale(interaction.locale.value)
    if interaction.guild_id is None:
        return []
    needle = current.casefold().strip()
    products = await bot.shop.list_products(interaction.guild_id)
    return [
        Choice(
            name=(
                f"{p.name} — {bot.shop.describe_price(p)}" + ("" if p.active else _(" (paused)"))
            )[:100],
            value=str(p.id),
        )
        for p in products
        if needle in p.name.casefold()
    ][:25]
