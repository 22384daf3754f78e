"""Shared rendering: the ephemeral reply helper, embeds and link buttons."""

from __future__ import annotations

from datetime import datetime

import discord

from bot.i18n import N_, _
from bot.membership import Holding, Purchases
from bot.models import Order, Product

BRAND = discord.Colour.blurple()


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
) -> None:
    """Always ephemeral; uses the followup once the response was sent or deferred."""
    kwargs: dict = {"content": content, "ephemeral": True}
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if file is not None:
        kwargs["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


def checkout_view(url: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label=_("Pay with Stripe"), url=url, emoji="💳"))
    return view


def premium_view(sku_id: int) -> discord.ui.View:
    """Discord's premium button for an SKU (it shows the SKU's name and price itself)."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(sku_id=sku_id))
    return view


def premium_embed(product: Product) -> discord.Embed:
    embed = discord.Embed(
        title=_("Buy {product}", product=product.name),
        colour=BRAND,
        description=product.description or None,
    )
    embed.set_footer(text=_("Sold in Discord's store: the button below shows the price."))
    return embed


def checkout_embed(
    order: Order, product: Product, price: str, minutes: int, gift_to: int | None
) -> discord.Embed:
    embed = discord.Embed(
        title=_("Buy {product}", product=product.name),
        colour=BRAND,
        description=product.description or None,
    )
    embed.add_field(name=_("Price"), value=price)
    embed.add_field(name=_("Order"), value=f"#{order.id}")
    if gift_to is not None:
        embed.add_field(name=_("Gift for"), value=f"<@{gift_to}>", inline=False)
    embed.set_footer(
        text=_("This link is only for you and expires in {minutes} minutes.", minutes=minutes)
    )
    return embed


DELIVERY_TEXT = {
    "delivered": N_("delivered"),
    "delivering": N_("being delivered"),
    "failed": N_("delivery failed — the admins have been told"),
    "nothing": "",
}
ORDER_TEXT = {
    "pending": N_("waiting for payment"),
    "paid": N_("paid"),
    "failed": N_("payment failed"),
    "refunded": N_("refunded"),
    "disputed": N_("disputed (chargeback)"),
}


def _day(moment: datetime) -> str:
    return f"{discord.utils.format_dt(moment, 'D')} ({discord.utils.format_dt(moment, 'R')})"


def _access_text(access: str, until: str) -> str:
    if access == "forever":
        return _("yours for good")
    if access == "renews":
        return _("renews on {until}", until=until)
    if access == "cancels":
        return _("cancels on {until}; it will not renew", until=until)
    if access == "payment_failed":
        return _("payment failed — access until {until}; update it with `/manage`", until=until)
    if access == "trial":
        return _("free trial until {until}", until=until)
    return _("expires on {until}", until=until)


def holding_line(item: Holding) -> str:
    """`**Pro** — delivered · renews on <date>` — the item's true state, as a sentence."""
    until = _day(item.until) if item.until is not None else ""
    delivery = DELIVERY_TEXT[item.delivery]
    parts = [_(delivery) if delivery else "", _access_text(item.access, until)]
    return f"**{item.name}** — " + " · ".join(p for p in parts if p)


def purchases_embed(purchases: Purchases) -> discord.Embed:
    embed = discord.Embed(title=_("Your purchases"), colour=BRAND)
    if purchases.holdings:
        lines = [holding_line(item) for item in purchases.holdings]
        embed.add_field(name=_("Your access"), value="\n".join(lines)[:1024], inline=False)
    if purchases.orders:
        lines = []
        for order, product in purchases.orders[:10]:
            name = product.name if product else _("product {id}", id=order.product_id)
            code = _(" · code `{code}`", code=order.claim_code) if order.claim_code else ""
            status = _(ORDER_TEXT[order.status]) if order.status in ORDER_TEXT else order.status
            if order.status == "pending" and order.checkout_expires_at is not None:
                link = discord.utils.format_dt(order.checkout_expires_at, "R")
                status += _(" (the link works until {time})", time=link)
            lines.append(f"#{order.id} **{name}** — {status}{code}")
        embed.add_field(name=_("Orders"), value="\n".join(lines)[:1024], inline=False)
    if purchases.pending_jobs:
        lines = [
            f"{job.kind.replace('_', ' ')} — {job.last_error or _('queued')}"
            for job in purchases.pending_jobs[:10]
        ]
        embed.add_field(name=_("Being delivered"), value="\n".join(lines)[:1024], inline=False)
    if not (purchases.holdings or purchases.orders):
        embed.description = _("You have not bought anything here yet. Try `/buy`.")
    return embed
