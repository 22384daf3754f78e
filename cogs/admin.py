"""The /shop admin group: catalog and queue. Manage Server by default, re-checked here."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import revenue_chart
from bot.discord_adapter import role_problem
from bot.errors import InvalidInput
from bot.i18n import N_, _
from bot.shop import ProductDraft
from cogs._options import (
    ACTION_NAMES,
    ACTION_TYPES,
    INTERVALS,
    JOB_NAMES,
    JOB_STATUSES,
    KINDS,
    ORDER_NAMES,
    ORDER_STATUSES,
    PERIODS,
    STAGE_NAMES,
    STAGES,
    admin_product_autocomplete,
    in_sentence,
    readable,
)
from cogs._reports import (
    CHART,
    chart_title,
    diagnose_embed,
    diagnose_guild,
    order_line,
    queue_embed,
    stats_embed,
    why_embed,
)
from cogs._skus import server_entitlements_text, sku_linked_text, sku_list_embed
from cogs._ui import BRAND, reply
from cogs.errors import NotShopAdmin

if TYPE_CHECKING:
    from bot.app import ShopBot

#: Every /shop command that names a product completes it from all live products, paused too.
product_autocomplete = admin_product_autocomplete
PRODUCT = "A product of this shop (paused ones too)"
NOTHING_GIVEN = N_(
    "⚠️ It gives buyers nothing yet: add a role with `/shop product edit role:` "
    "or an action with `/shop action add`."
)


def is_shop_admin(interaction: discord.Interaction, admin_role_ids: list[int]) -> bool:
    """Manage Server (or Administrator) in this guild, or one of the configured admin roles."""
    if interaction.guild is None or not isinstance(interaction.user, discord.Member):
        return False
    perms = interaction.user.guild_permissions
    if perms.manage_guild or perms.administrator:
        return True
    return any(role.id in admin_role_ids for role in interaction.user.roles)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(commands.GroupCog, group_name="shop", group_description="Run the shop"):
    product = app_commands.Group(name="product", description="Products for sale")
    action = app_commands.Group(name="action", description="What happens at each stage")
    license = app_commands.Group(name="license", description="License keys to hand out")
    panel = app_commands.Group(name="panel", description="Shop messages with Buy buttons")
    settings = app_commands.Group(name="settings", description="Shop settings for this server")
    sku = app_commands.Group(name="sku", description="Sell products in Discord's own store")

    def __init__(self, bot: ShopBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Server-side check: command permissions can be changed by server admins."""
        if not is_shop_admin(interaction, self.bot.settings.discord.admin_role_ids):
            raise NotShopAdmin()
        return True

    @product.command(name="add", description="Add a product")
    @app_commands.describe(
        name="Product name",
        price="Price like 4.99",
        currency="3-letter code (default from config)",
        role="Role to give buyers",
        kind="One-time purchase (default), timed access or a subscription",
        interval="How often a subscription bills (required for subscriptions)",
        duration_days="Days of access (required for timed access)",
        trial_days="Free trial days (subscriptions)",
        description="Shown at checkout",
        stock="How many can be sold (empty = unlimited)",
        allow_promotion_codes="Accept Stripe promotion codes at checkout",
        image_url="An image for the product (https://…), shown on panels and the web shop",
        max_devices="Machines one license key may be used on (default 1)",
    )
    @app_commands.choices(kind=KINDS, interval=INTERVALS)
    async def product_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 80],
        price: app_commands.Range[str, 1, 20],
        currency: app_commands.Range[str, 1, 10] | None = None,
        role: discord.Role | None = None,
        kind: str = "one_time",
        interval: str | None = None,
        duration_days: app_commands.Range[int, 1, 3650] | None = None,
        trial_days: app_commands.Range[int, 1, 730] | None = None,
        description: app_commands.Range[str, 0, 500] | None = None,
        stock: app_commands.Range[int, 0, 1_000_000] | None = None,
        allow_promotion_codes: bool = False,
        image_url: app_commands.Range[str, 1, 1000] | None = None,
        max_devices: app_commands.Range[int, 1, 1000] = 1,
    ) -> None:
        assert interaction.guild is not None
        if role is not None:
            problem = role_problem(interaction.guild, role)
            if problem:
                raise InvalidInput(problem)
        draft = ProductDraft(
            name=name,
            price=price,
            currency=currency,
            role_id=role.id if role else None,
            kind=kind,
            interval=interval,
            duration_days=duration_days,
            trial_days=trial_days,
            description=description,
            stock=stock,
            allow_promotion_codes=allow_promotion_codes,
            image_url=image_url,
            max_devices=max_devices,
        )
        product = await self.bot.shop.add_product(interaction.guild.id, interaction.user.id, draft)
        price = self.bot.shop.describe_price(product)
        if role is not None:
            text = _(
                "Added **{product}** ({price}), gives {role}.",
                product=product.name,
                price=price,
                role=role.mention,
            )
        else:
            text = _("Added **{product}** ({price}).", product=product.name, price=price)
            text += "\n" + _(NOTHING_GIVEN)
        await reply(interaction, text)

    @product.command(name="edit", description="Change a product")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(
        product=PRODUCT,
        name="New name",
        price="New price like 4.99, in the product's currency",
        description="New text shown at checkout",
        stock="How many can still be sold",
        active="Whether it is for sale (False pauses it)",
        role="The role new buyers get (replaces the current one)",
        image_url="An image (https://…); `none` removes it",
        allow_promotion_codes="Accept Stripe promotion codes at checkout",
    )
    async def product_edit(
        self,
        interaction: discord.Interaction,
        product: str,
        name: app_commands.Range[str, 1, 80] | None = None,
        price: app_commands.Range[str, 1, 20] | None = None,
        description: app_commands.Range[str, 0, 500] | None = None,
        stock: app_commands.Range[int, 0, 1_000_000] | None = None,
        active: bool | None = None,
        role: discord.Role | None = None,
        image_url: app_commands.Range[str, 1, 1000] | None = None,
        allow_promotion_codes: bool | None = None,
    ) -> None:
        assert interaction.guild is not None and interaction.guild_id is not None
        if role is not None and (problem := role_problem(interaction.guild, role)):
            raise InvalidInput(problem)
        updated = await self.bot.shop.edit_product(
            interaction.guild_id,
            interaction.user.id,
            product,
            name=name,
            price=price,
            description=description,
            stock=stock,
            active=active,
            role_id=role.id if role else None,
            image_url=image_url,
            allow_promotion_codes=allow_promotion_codes,
        )
        state = _("for sale") if updated.active else _("paused")
        if updated.allow_promotion_codes:
            state += _(", promotion codes accepted")
        params = {
            "product": updated.name,
            "price": self.bot.shop.describe_price(updated),
            "state": state,
        }
        text = (
            _(
                "Updated **{product}** ({price}, {state}); new buyers get {role}.",
                role=role.mention,
                **params,
            )
            if role is not None
            else _("Updated **{product}** ({price}, {state}).", **params)
        )
        await reply(interaction, text)

    @product.command(name="remove", description="Stop selling a product (history is kept)")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(product=PRODUCT)
    async def product_remove(self, interaction: discord.Interaction, product: str) -> None:
        assert interaction.guild_id is not None
        removed = await self.bot.shop.remove_product(
            interaction.guild_id, interaction.user.id, product
        )
        await reply(
            interaction,
            _("Removed **{product}**; past orders and access are kept.", product=removed.name),
        )

    @product.command(name="list", description="List products")
    async def product_list(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        products = await self.bot.shop.list_products(interaction.guild_id)
        if not products:
            await reply(interaction, _("No products yet. Add one with `/shop product add`."))
            return
        embed = discord.Embed(title=_("Products"), colour=BRAND)
        for p in products[:25]:
            roles = await self.bot.shop.product_roles(p.id)
            parts = [self.bot.shop.describe_price(p), _("for sale") if p.active else _("paused")]
            left = await self.bot.shop.units_left(p.id)
            if left is not None:
                parts.append(_("{count} left", count=left) if left else _("sold out"))
            if roles:
                parts.append(" ".join(f"<@&{r}>" for r in roles))
            embed.add_field(name=f"{p.name} (#{p.id})", value=" · ".join(parts), inline=False)
        await reply(interaction, embed=embed)

    # /shop sku (SPEC §6b) -----------------------------------------------------------------

    @sku.command(name="link", description="Sell a product as one of the app's Discord SKUs")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(sku="The SKU's id (see /shop sku list)", product=PRODUCT)
    async def sku_link(
        self,
        interaction: discord.Interaction,
        sku: app_commands.Range[str, 1, 100],
        product: str,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        link, linked = await self.bot.services.skus.link(
            interaction.guild_id, interaction.user.id, sku, product
        )
        await reply(interaction, sku_linked_text(link, linked))

    @sku.command(name="unlink", description="Stop selling a Discord SKU here")
    @app_commands.describe(sku="The SKU's id (see /shop sku list)")
    async def sku_unlink(
        self, interaction: discord.Interaction, sku: app_commands.Range[str, 1, 100]
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        link = await self.bot.services.skus.unlink(interaction.guild_id, interaction.user.id, sku)
        await reply(
            interaction,
            _("SKU **{sku}** is no longer sold here; orders it made are kept.", sku=link.sku_name),
        )

    @sku.command(name="list", description="The app's Discord SKUs and the products they sell")
    async def sku_list(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        rows = await self.bot.services.skus.catalogue(interaction.guild_id)
        await reply(interaction, embed=sku_list_embed(rows))

    @action.command(name="add", description="Add an action to a product")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(
        product=PRODUCT,
        type="What the bot does",
        stage="When it does it",
        role="The role to give or take (Give a role)",
        channel="Where to post (Send a message; empty = a DM) or the invite's channel",
        revoke_on="For Give a role: when to take it back, like on_refund,on_chargeback "
        "(default: on expiry, refund and chargeback)",
        message="For Send a message ({user} mentions the member)",
    )
    @app_commands.choices(type=ACTION_TYPES, stage=STAGES)
    async def action_add(
        self,
        interaction: discord.Interaction,
        product: str,
        type: str,
        stage: str,
        role: discord.Role | None = None,
        channel: discord.TextChannel | None = None,
        message: app_commands.Range[str, 1, 1800] | None = None,
        revoke_on: app_commands.Range[str, 1, 60] | None = None,
    ) -> None:
        assert interaction.guild is not None
        if role is not None and (problem := role_problem(interaction.guild, role)):
            raise InvalidInput(problem)
        action = await self.bot.actions.add(
            interaction.guild.id,
            interaction.user.id,
            product,
            type=type,
            stage=stage,
            role_id=role.id if role else None,
            channel_id=channel.id if channel else None,
            message=message,
            revoke_on=revoke_on,
        )
        await reply(
            interaction,
            _(
                "Added action #{action}: {type}, {stage}.",
                action=action.id,
                type=in_sentence(readable(type, ACTION_NAMES)),
                stage=in_sentence(readable(stage, STAGE_NAMES)),
            ),
        )

    @action.command(name="list", description="List a product's actions")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(product=PRODUCT)
    async def action_list(self, interaction: discord.Interaction, product: str) -> None:
        assert interaction.guild_id is not None
        actions = await self.bot.actions.list(interaction.guild_id, product)
        lines = [
            f"`#{a.id}` {a.stage} → {a.type}"
            + (
                _(" <@&{role}> (revoke on {stages})", role=a.role_id, stages=a.revoke_on)
                if a.role_id
                else ""
            )
            + (_(" in <#{channel}>", channel=a.channel_id) if a.channel_id else "")
            + (f": {a.message[:80]}" if a.message else "")
            for a in actions
        ]
        await reply(interaction, "\n".join(lines)[:1900] or _("No actions."))

    @action.command(name="remove", description="Remove an action")
    @app_commands.describe(action_id="The action's number, from /shop action list")
    async def action_remove(
        self, interaction: discord.Interaction, action_id: app_commands.Range[int, 1]
    ) -> None:
        assert interaction.guild_id is not None
        removed = await self.bot.actions.remove(
            interaction.guild_id, interaction.user.id, action_id
        )
        await reply(
            interaction,
            _(
                "Removed action #{action} ({type} {stage}).",
                action=removed.id,
                type=removed.type,
                stage=removed.stage,
            ),
        )

    @license.command(name="add", description="Add license keys, one per line")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(
        product=PRODUCT,
        keys="Keys separated by spaces or new lines",
        file="A text file, one key a line",
    )
    async def license_add(
        self,
        interaction: discord.Interaction,
        product: str,
        keys: app_commands.Range[str, 1, 4000] | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        text = (keys or "").replace(" ", "\n")
        if file is not None:
            if file.size > 512 * 1024:
                raise InvalidInput(N_("That file is too large (512 KB at most)."))
            await interaction.response.defer(ephemeral=True, thinking=True)
            text += "\n" + (await file.read()).decode("utf-8", errors="replace")
        added, known = await self.bot.actions.add_licenses(
            interaction.guild_id, interaction.user.id, product, text
        )
        await reply(
            interaction,
            _("Added {count} keys ({known} were already there).", count=added, known=known)
            if known
            else _("Added {count} keys.", count=added),
        )

    @license.command(name="reset", description="Unbind a license key's devices")
    @app_commands.describe(key="The license key, as the buyer got it")
    async def license_reset(
        self, interaction: discord.Interaction, key: app_commands.Range[str, 1, 200]
    ) -> None:
        assert interaction.guild_id is not None
        if not await self.bot.licenses.reset(key, interaction.guild_id, interaction.user.id):
            raise InvalidInput(N_("No key like that has been handed out in this server."))
        await reply(interaction, _("Done: that key can be used on new devices now."))

    @panel.command(name="post", description="Post a shop message with a Buy button per product")
    @app_commands.describe(
        channel="Where to post it",
        products="Product names or ids, separated by commas (default: all for sale, up to 10)",
        title="A heading above the products (default: Shop)",
    )
    async def panel_post(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        products: app_commands.Range[str, 1, 1000] | None = None,
        title: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        guild = interaction.guild
        assert guild is not None
        me = guild.me
        if me is not None:
            perms = channel.permissions_for(me)
            if not (perms.view_channel and perms.send_messages and perms.embed_links):
                raise InvalidInput(
                    N_(
                        "The bot needs View Channel, Send Messages and Embed Links in "
                        "{channel} to post a panel there."
                    ),
                    channel=channel.mention,
                )
        await interaction.response.defer(ephemeral=True, thinking=True)
        panel = await self.bot.panels.post(
            guild.id, interaction.user.id, channel.id, products, title
        )
        link = f"https://discord.com/channels/{guild.id}/{channel.id}/{panel.message_id}"
        await reply(
            interaction,
            _(
                "Posted a panel with {count} product(s) in {channel}: {link}\nIt updates "
                "itself when those products change; `/shop panel remove` takes it down.",
                count=len(panel.product_ids),
                channel=channel.mention,
                link=link,
            ),
        )

    @panel.command(name="remove", description="Delete a shop panel message")
    @app_commands.describe(message="The panel's message link (Copy Message Link) or id")
    async def panel_remove(
        self, interaction: discord.Interaction, message: app_commands.Range[str, 1, 200]
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        panel = await self.bot.panels.remove(interaction.guild_id, interaction.user.id, message)
        await reply(
            interaction,
            _("Removed the shop panel from <#{channel}>.", channel=panel.channel_id),
        )

    @app_commands.command(name="grant", description="Give a member a product without payment")
    @app_commands.describe(
        member="Who gets it", product=PRODUCT, days="How many days (empty = forever)"
    )
    @app_commands.autocomplete(product=product_autocomplete)
    async def grant(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        product: str,
        days: app_commands.Range[int, 1, 3650] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if member.bot:
            raise InvalidInput(N_("Bots cannot be given products."))
        entitlement = await self.bot.admin_ops.grant(
            interaction.guild_id, interaction.user.id, member.id, product, days
        )
        text = (
            _(
                "Gave {member} access until {until}.",
                member=member.mention,
                until=discord.utils.format_dt(entitlement.ends_at, "D"),
            )
            if entitlement.ends_at
            else _("Gave {member} access until forever.", member=member.mention)
        )
        await reply(interaction, text)

    @app_commands.command(name="revoke", description="Take a product away from a member")
    @app_commands.autocomplete(product=product_autocomplete)
    @app_commands.describe(member="Whose access ends", product=PRODUCT)
    async def revoke(
        self, interaction: discord.Interaction, member: discord.Member, product: str
    ) -> None:
        assert interaction.guild_id is not None
        count = await self.bot.admin_ops.revoke(
            interaction.guild_id, interaction.user.id, member.id, product
        )
        await reply(
            interaction,
            _(
                "Revoked {count} active access for {member}; roles the shop gave are being "
                "removed.",
                count=count,
                member=member.mention,
            ),
        )

    @app_commands.command(name="refund", description="Refund an order through Stripe")
    @app_commands.describe(order="Order number, like 42", reason="Kept in the audit log")
    async def refund(
        self,
        interaction: discord.Interaction,
        order: app_commands.Range[str, 1, 20],
        reason: app_commands.Range[str, 0, 200] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.bot.admin_ops.refund(
            interaction.guild_id, interaction.user.id, order, reason or ""
        )
        await reply(
            interaction,
            _(
                "Refund of order #{order} sent to Stripe; its subscription is canceled, so it "
                "will not renew; access ends as soon as Stripe confirms it.",
                order=result.order_id,
            )
            if result.subscription_canceled
            else _(
                "Refund of order #{order} sent to Stripe; access ends as soon as Stripe "
                "confirms it.",
                order=result.order_id,
            ),
        )

    @app_commands.command(name="orders", description="Recent orders, by member or status")
    @app_commands.describe(
        member="Only this member's orders (bought or received)", status="Only orders in this state"
    )
    @app_commands.choices(status=ORDER_STATUSES)
    async def orders(
        self,
        interaction: discord.Interaction,
        member: discord.Member | None = None,
        status: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        orders = await self.bot.reports.orders(
            interaction.guild_id, member.id if member else None, status
        )
        if not orders:
            await reply(interaction, _("No orders match."))
            return
        now = discord.utils.utcnow()
        expiry = timedelta(hours=self.bot.settings.shop.claim_expiry_hours)
        lines = [
            order_line(order, name, in_sentence(readable(order.status, ORDER_NAMES)), now, expiry)
            for order, name in orders
        ]
        embed = discord.Embed(title=_("Orders"), colour=BRAND, description="\n".join(lines)[:4000])
        await reply(interaction, embed=embed)

    @app_commands.command(name="retry", description="Retry a failed delivery job, or all of them")
    @app_commands.describe(job="A job number from /shop queue, or `failed` for every failed job")
    async def retry(
        self, interaction: discord.Interaction, job: app_commands.Range[str, 1, 20]
    ) -> None:
        assert interaction.guild_id is not None
        count = await self.bot.admin_ops.retry_jobs(interaction.guild_id, interaction.user.id, job)
        await reply(interaction, _("Retrying {count} job(s).", count=count))

    @app_commands.command(
        name="stats", description="Revenue, subscribers, refunds and deliveries, with a chart"
    )
    @app_commands.describe(period="Which days to count (default: the last 30 days)")
    @app_commands.choices(period=PERIODS)
    async def stats(self, interaction: discord.Interaction, period: str = "30d") -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        stats = await self.bot.reports.period_stats(interaction.guild_id, period)
        # matplotlib is slow and blocking: draw in a worker thread, off the event loop.
        png = await asyncio.to_thread(
            revenue_chart, stats.days, stats.revenue_per_day, chart_title(stats)
        )
        chart = discord.File(io.BytesIO(png), filename=CHART)
        embed = stats_embed(stats)
        held = await self.bot.services.skus.server_entitlements(interaction.guild_id)
        if held:
            embed.add_field(
                name=_("Discord server subscriptions"), value=server_entitlements_text(held)
            )
        await reply(interaction, embed=embed, file=chart)

    @app_commands.command(name="why", description="Why a member has or lacks shop roles")
    @app_commands.describe(member="The member to explain", role="Only this role")
    async def why(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        role: discord.Role | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        report = await self.bot.reports.member(interaction.guild_id, member.id)
        await reply(interaction, embed=why_embed(member, role, report))

    @app_commands.command(name="diagnose", description="Check permissions, roles and webhooks")
    async def diagnose(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        assert guild is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        checks = await diagnose_guild(self.bot, guild)
        held = await self.bot.services.skus.server_entitlements(guild.id)
        if held:
            checks.append(
                (
                    True,
                    _(
                        "Discord server subscriptions (no member roles): {subscriptions}",
                        subscriptions=server_entitlements_text(held),
                    ),
                )
            )
        await reply(interaction, embed=diagnose_embed(checks))

    @app_commands.command(name="queue", description="Delivery jobs, with the reason for failures")
    @app_commands.describe(status="Only jobs in this state")
    @app_commands.choices(status=JOB_STATUSES)
    async def queue(self, interaction: discord.Interaction, status: str | None = None) -> None:
        assert interaction.guild_id is not None
        jobs = await self.bot.reports.queue(interaction.guild_id, status)
        if not jobs:
            text = (
                _("No {status} delivery jobs.", status=in_sentence(readable(status, JOB_NAMES)))
                if status
                else _("No delivery jobs.")
            )
            await reply(interaction, text)
            return
        await reply(interaction, embed=queue_embed(jobs))

    # /shop settings ---------------------------------------------------------------------

    @settings.command(name="log_channel", description="Where the bot tells admins what happens")
    @app_commands.describe(
        channel="Channel for sales, refunds, disputes and failed deliveries (empty = off)"
    )
    async def settings_log_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        assert interaction.guild is not None
        if channel is not None and channel.guild.id != interaction.guild.id:
            raise InvalidInput(N_("Pick a channel of this server."))
        await self.bot.services.notices.set_log_channel(
            interaction.guild.id, interaction.user.id, channel.id if channel else None
        )
        if channel is None:
            await reply(interaction, _("The shop's log channel is off."))
            return
        await reply(
            interaction,
            _(
                "The shop will post sales, renewals, failed payments, refunds, disputes and "
                "failed deliveries in {channel} (bursts are summarised every 15 s). If nothing "
                "appears there, `/shop diagnose` says why.",
                channel=channel.mention,
            ),
        )

    @settings.command(name="locale", description="Language for DMs, panels and the log channel")
    @app_commands.describe(locale="The language (empty = the server's preferred language)")
    @app_commands.choices(
        locale=[
            app_commands.Choice(name="English", value="en"),
            app_commands.Choice(name="Deutsch (German)", value="de"),
        ]
    )
    async def settings_locale(
        self, interaction: discord.Interaction, locale: str | None = None
    ) -> None:
        assert interaction.guild is not None
        now = await self.bot.services.notices.set_locale(
            interaction.guild.id, interaction.user.id, locale
        )
        name = LANGUAGE_NAMES.get(now, now)
        await reply(
            interaction,
            _("DMs, panels and the log channel of this server now use {language}.", language=name)
            if locale
            else _(
                "DMs, panels and the log channel follow the server's preferred language "
                "({language}).",
                language=name,
            ),
        )


#: Each language in its own words (`/shop settings locale`)
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}


async def setup(bot: ShopBot) -> None:
    await bot.add_cog(Admin(bot))
