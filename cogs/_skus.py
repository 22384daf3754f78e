"""Rendering for `/shop sku link|unlink|list` and the Discord store lines of reports."""

from __future__ import annotations

import discord

from bot.i18n import _
from bot.models import Product
from bot.skus import ServerEntitlement, SkuLink, SkuRow, type_name
from cogs._ui import BRAND


def sku_linked_text(link: SkuLink, product: Product) -> str:
    return _(
        "**{product}** is now sold as the Discord SKU **{sku}** ({type}). `/buy` and shop "
        "panels show Discord's button for it; purchases deliver and refunds revoke like "
        "Stripe orders.",
        product=product.name,
        sku=link.sku_name,
        type=type_name(link.sku_type),
    )


def sku_list_embed(rows: list[SkuRow]) -> discord.Embed:
    embed = discord.Embed(title=_("Discord SKUs of this app"), colour=BRAND)
    if not rows:
        embed.description = _(
            "This app has no SKUs. Create them in the Developer Portal (Monetization → SKUs); "
            "only verified apps can sell."
        )
        return embed
    lines = [
        f"`{row.sku_id}` **{row.name}** · {row.type_name} · "
        + (_("sells **{product}**", product=row.product) if row.product else _("not linked"))
        for row in rows
    ]
    embed.description = "\n".join(lines)[:4000]
    embed.set_footer(text=_("Link one with /shop sku link sku product"))
    return embed


def server_entitlements_text(held: list[ServerEntitlement]) -> str:
    """The server's own Discord entitlements (server subscriptions), for diagnose and stats."""
    if not held:
        return _("none")
    return ", ".join(
        f"**{item.sku_name}** ({_('active') if item.active else _('ended')})" for item in held
    )[:1000]
