"""Buyer commands: /buy, /claim, /purchases, /help (every reply is ephemeral)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands
from discord.ui import View

from bot import i18n
from bot.errors import Forbidden, InvalidInput, NotFound, TooManyAttempts
from bot.i18n import N_, _
from cogs._ui import (
    checkout_embed,
    checkout_view,
    premium_embed,
    premium_view,
    purchases_embed,
    reply,
)
from cogs.errors import report_error

if TYPE_CHECKING:
    from bot.app import ShopBot

HELP = N_("""**Buying**
`/buy` — pick a product and get a private Stripe checkout link.
`/buy product gift_to:@member` — buy it for someone else.
`/purchases` — what you own, until when, and what is still being delivered.
`/claim` — deliver anything still pending for you now.
`/claim code` — claim an order with its code (gifts, purchases made elsewhere).
`/manage` — change or cancel your subscriptions in Stripe's billing portal.

**Admins**: `/shop product add|edit|remove|list`, `/shop panel post|remove`,
`/shop grant|revoke`, `/shop refund`, `/shop queue`.""")


#: (uses, seconds) per member and guild: a person never needs more; Stripe and the database
#: are spared a script's flood. Wrong claim codes have their own, durable limit.
BUY_COOLDOWN = (3, 30.0)
CLAIM_COOLDOWN = (5, 60.0)


def per_member(interaction: discord.Interaction) -> tuple[int | None, int]:
    return (interaction.guild_id, interaction.user.id)


async def product_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Active products of this guild whose name contains what was typed."""
    bot: ShopBot = interaction.client  # type: ignore[assignment]
    if interaction.guild_id is None:
        return []
    needle = current.casefold().strip()
    products = await bot.shop.list_products(interaction.guild_id, active_only=True)
    return [
        app_commands.Choice(name=f"{p.name} — {bot.shop.describe_price(p)}"[:100], value=str(p.id))
        for p in products
        if needle in p.name.casefold()
    ][:25]


class ProductPick(
    discord.ui.DynamicItem[discord.ui.Select],
    template=r"shop:pick:(?P<buyer>[0-9]{1,20}):(?P<gift>[0-9]{1,20})",
):
    """The select menu /buy shows without a product. Its custom_id carries the buyer and the
    gift's recipient (0: none), so the choice starts the checkout /buy was asked for — also
    after a restart — and only for the member who ran /buy."""

    def __init__(
        self, buyer_id: int, gift_to: int | None, options: list[discord.SelectOption] | None = None
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"shop:pick:{buyer_id}:{gift_to or 0}",
                placeholder=_("Choose a product"),
                options=options or [],
            )
        )
        self.buyer_id = buyer_id
        self.gift_to = gift_to

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Select,  # type: ignore[override]
        match: re.Match[str],
    ) -> ProductPick:
        gift = int(match["gift"])
        return cls(int(match["buyer"]), gift or None, list(item.options))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: ShopBot = interaction.client  # type: ignore[assignment]
        try:
            i18n.set_locale(interaction.locale.value)  # a component: not through the tree
            if interaction.user.id != self.buyer_id:
                raise Forbidden(
                    N_("This menu belongs to someone else's `/buy`; run `/buy` yourself.")
                )
            await send_checkout(bot, interaction, self.item.values[0], self.gift_to)
        except Exception as exc:  # a component's errors never reach the tree's handler
            await report_error(interaction, exc)


class BuyButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"shop:buy:(?P<product>[0-9]{1,20})",
):
    """A shop panel's Buy button (bot/panels.py builds it as `shop:buy:<product_id>`).

    Anyone may press it; the checkout is theirs, exactly as `/buy product` makes it, and
    every refusal (paused, sold out, already subscribed, too many open links) is ephemeral.
    Matched by its custom_id, so it works after restarts without the panel being re-posted.
    """

    def __init__(self, product_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=_("Buy"),
                style=discord.ButtonStyle.success,
                custom_id=f"shop:buy:{product_id}",
            )
        )
        self.product_id = product_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button,  # type: ignore[override]
        match: re.Match[str],
    ) -> BuyButton:
        return cls(int(match["product"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: ShopBot = interaction.client  # type: ignore[assignment]
        try:
            i18n.set_locale(interaction.locale.value)  # a component: not through the tree
            if interaction.guild_id is None:
                raise InvalidInput(N_("Shop panels work inside their server only."))
            buyer: Buyer | None = bot.get_cog("Buyer")  # type: ignore[assignment]
            if buyer is not None and (retry := buyer.buy_cooldown(interaction)) is not None:
                raise TooManyAttempts(
                    N_("You are pressing Buy too fast; try again in {seconds} s."),
                    seconds=max(1, math.ceil(retry)),
                )
            await send_checkout(bot, interaction, str(self.product_id), None)
        except Exception as exc:  # a component's errors never reach the tree's handler
            await report_error(interaction, exc)


def picker_view(buyer_id: int, gift_to: int | None, options: list[discord.SelectOption]) -> View:
    view = View(timeout=None)
    view.add_item(ProductPick(buyer_id, gift_to, options))
    return view


async def send_checkout(
    bot: ShopBot, interaction: discord.Interaction, ref: str, gift_to: int | None
) -> None:
    """Create the checkout (Stripe may be slow: defer first) and reply with a link button.

    A product sold as a Discord SKU is bought in Discord's store: the reply carries the
    premium button instead, or says the member already holds it (`Interaction.entitlements`).
    """
    assert interaction.guild_id is not None
    if await send_premium(bot, interaction, ref, gift_to):
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    order, product = await bot.shop.start_checkout(
        interaction.guild_id, interaction.user.id, ref, gift_to
    )
    assert order.checkout_url is not None
    embed = checkout_embed(
        order,
        product,
        bot.shop.describe_price(product),
        bot.settings.shop.checkout_expiry_minutes,
        gift_to,
    )
    await reply(interaction, embed=embed, view=checkout_view(order.checkout_url))


def holds_sku(interaction: discord.Interaction, sku_id: int) -> bool:
    """The member (or the server) already has a live entitlement to this SKU."""
    return any(
        e.sku_id == sku_id and not e.deleted and not e.is_expired()
        for e in interaction.entitlements
    )


async def send_premium(
    bot: ShopBot, interaction: discord.Interaction, ref: str, gift_to: int | None
) -> bool:
    """Answer for a product sold as a Discord SKU; False when it is not one."""
    assert interaction.guild_id is not None
    product = await bot.shop.resolve_product(interaction.guild_id, ref, for_sale=True)
    sku_id = await bot.services.skus.premium_sku(product.id)
    if sku_id is None:
        return False
    if holds_sku(interaction, sku_id):
        await reply(
            interaction,
            _("You already have **{product}** through Discord.", product=product.name),
        )
        return True
    if gift_to is not None:
        raise InvalidInput(
            N_("**{product}** is sold in Discord's store; it cannot be bought as a gift here."),
            product=product.name,
        )
    await reply(interaction, embed=premium_embed(product), view=premium_view(sku_id))
    return True


class Buyer(commands.Cog):
    def __init__(self, bot: ShopBot) -> None:
        self.bot = bot
        # Panel Buy buttons share /buy's limit per member (it bounds Stripe calls, not buyers).
        self._buy_cooldowns: dict[tuple[int | None, int], app_commands.Cooldown] = {}

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ProductPick, BuyButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ProductPick, BuyButton)

    def buy_cooldown(self, interaction: discord.Interaction) -> float | None:
        """Seconds to wait when this member pressed Buy too often (BUY_COOLDOWN), else None."""
        key = per_member(interaction)
        if len(self._buy_cooldowns) > 10_000:  # forget members whose window has passed
            self._buy_cooldowns = {
                k: c for k, c in self._buy_cooldowns.items() if c.get_tokens() < c.rate
            }
        bucket = self._buy_cooldowns.setdefault(key, app_commands.Cooldown(*BUY_COOLDOWN))
        return bucket.update_rate_limit()

    @app_commands.command(name="buy", description="Buy a product from this server's shop")
    @app_commands.guild_only()
    @app_commands.checks.cooldown(*BUY_COOLDOWN, key=per_member)
    @app_commands.describe(product="What to buy", gift_to="Buy it as a gift for this member")
    @app_commands.autocomplete(product=product_autocomplete)
    async def buy(
        self,
        interaction: discord.Interaction,
        product: str | None = None,
        gift_to: discord.Member | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if gift_to is not None and gift_to.bot:
            raise InvalidInput(N_("Bots cannot receive gifts."))
        if gift_to is not None and gift_to.id == interaction.user.id:
            gift_to = None
        recipient = gift_to.id if gift_to is not None else None
        if product is not None:
            await send_checkout(self.bot, interaction, product, recipient)
            return
        products = await self.bot.shop.list_products(interaction.guild_id, active_only=True)
        if not products:
            raise NotFound(N_("This shop has nothing for sale yet."))
        options = []
        for p in products[:25]:
            price = self.bot.shop.describe_price(p)
            if await self.bot.shop.units_left(p.id) == 0:
                price += _(" · sold out")
            options.append(
                discord.SelectOption(label=p.name[:100], value=str(p.id), description=price[:100])
            )
        question = _("What would you like to buy?")
        if gift_to is not None:
            question = _("What would you like to give {member}?", member=gift_to.mention)
        await reply(
            interaction, question, view=picker_view(interaction.user.id, recipient, options)
        )

    @app_commands.command(
        name="claim", description="Claim an order by code, or deliver what is pending"
    )
    @app_commands.guild_only()
    @app_commands.checks.cooldown(*CLAIM_COOLDOWN, key=per_member)
    @app_commands.describe(code="The claim code from your receipt (like ABCD-EFGH-JKLM-NPQR)")
    async def claim(self, interaction: discord.Interaction, code: str | None = None) -> None:
        assert interaction.guild_id is not None
        message = await self.bot.members_service.claim(
            interaction.guild_id, interaction.user.id, code
        )
        await reply(interaction, message)

    @app_commands.command(name="purchases", description="What you have bought here")
    @app_commands.guild_only()
    async def purchases(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        result = await self.bot.members_service.purchases(interaction.guild_id, interaction.user.id)
        await reply(interaction, embed=purchases_embed(result))

    @app_commands.command(name="manage", description="Manage your subscriptions (Stripe portal)")
    @app_commands.guild_only()
    async def manage(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = await self.bot.admin_ops.portal(interaction.guild_id, interaction.user.id)
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label=_("Open the billing portal"), url=url))
        await reply(
            interaction,
            _(
                "Change, cancel or renew your subscriptions here. "
                "This link is only for you and expires soon."
            ),
            view=view,
        )

    @app_commands.command(name="help", description="How the shop works")
    async def help(self, interaction: discord.Interaction) -> None:
        await reply(interaction, _(HELP))


async def setup(bot: ShopBot) -> None:
    await bot.add_cog(Buyer(bot))
