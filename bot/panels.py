"""Shop panels (SPEC §4): a message with an embed and a Buy button per product, kept current.

The message body is built here as Discord JSON (no discord import), the same way when it is
posted (`PanelService.post`) and when the worker edits it after a product changed
(`panel_body`, job `edit_panel` planned by `Planner.refresh_panels`). Each button's
custom_id is `shop:buy:<product_id>`; cogs/buyer.py's `BuyButton` (a DynamicItem) answers
it, so the buttons keep working across restarts without the message being posted again.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol

from bot.errors import (
    Conflict,
    DeliveryError,
    InvalidInput,
    MessageGone,
    NotFound,
    PermanentFailure,
    ShopError,
)
from bot.i18n import N_, _, use_locale
from bot.models import Panel, Product, Stage
from bot.shop import ShopService, describe_price
from bot.store import Store, Tx

log = logging.getLogger(__name__)

#: Discord: at most 10 embeds per message; buttons 5 a row, 5 rows. One of each per product.
MAX_PRODUCTS = 10
BUTTONS_PER_ROW = 5
MAX_TITLE = 100
DEFAULT_TITLE = "Shop"
BUY_CUSTOM_ID = "shop:buy:{product_id}"
COLOUR = 0x5865F2  # Discord blurple, like the bot's other embeds
_MESSAGE_LINK = re.compile(
    r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/"
    r"(?P<guild>[0-9]{1,20})/(?P<channel>[0-9]{1,20})/(?P<message>[0-9]{1,20})/?"
)
_MESSAGE_ID = re.compile(r"[0-9]{1,20}")


class PanelPort(Protocol):
    """What panels need from Discord (implemented in bot/discord_adapter.py)."""

    async def post_message(self, channel_id: int, body: dict[str, Any]) -> int: ...
    async def edit_message(
        self, channel_id: int, message_id: int, body: dict[str, Any]
    ) -> None: ...
    async def delete_message(self, channel_id: int, message_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PanelItem:
    """One product as the panel shows it."""

    product: Product
    units_left: int | None
    role_ids: list[int]
    sku_id: int | None = None  # sold through Discord's store (SPEC §6b): a premium button


def buy_custom_id(product_id: int) -> str:
    return BUY_CUSTOM_ID.format(product_id=product_id)


def availability(item: PanelItem) -> str | None:
    if not item.product.active:
        return _("Not for sale right now")
    if item.units_left == 0:
        return _("Sold out")
    if item.units_left is not None:
        return _("{count} left", count=item.units_left)
    return None


def product_embed(item: PanelItem) -> dict[str, Any]:
    """Name, description, image, price with kind/interval, trial, role, availability."""
    product = item.product
    fields = [{"name": _("Price"), "value": describe_price(product), "inline": True}]
    if product.trial_days:
        fields.append(
            {
                "name": _("Free trial"),
                "value": _("{days} days", days=product.trial_days),
                "inline": True,
            }
        )
    if item.role_ids:
        roles = " ".join(f"<@&{role}>" for role in item.role_ids)
        fields.append({"name": _("Gives"), "value": roles[:1024], "inline": True})
    if (state := availability(item)) is not None:
        fields.append({"name": _("Availability"), "value": state, "inline": True})
    embed: dict[str, Any] = {
        "type": "rich",
        "title": product.name[:256],
        "color": COLOUR,
        "fields": fields,
    }
    if product.description:
        embed["description"] = product.description[:4096]
    if product.image_url:
        embed["image"] = {"url": product.image_url}
    return embed


def render_panel(title: str, items: list[PanelItem]) -> dict[str, Any]:
    """The whole message body: title as content, one embed and one Buy button per product.

    Buttons stay enabled when a product is sold out or paused: pressing one answers with the
    reason (the server decides, not a panel that may be a moment old)."""
    embeds = [product_embed(item) for item in items]
    buttons = [button(item) for item in items]
    if not embeds:
        embeds = [
            {"type": "rich", "color": COLOUR, "description": _("Nothing is for sale here now.")}
        ]
    rows = [
        {"type": 1, "components": buttons[i : i + BUTTONS_PER_ROW]}
        for i in range(0, len(buttons), BUTTONS_PER_ROW)
    ]
    return {
        "content": f"**{title}**",
        "embeds": embeds,
        "components": rows,
        "allowed_mentions": {"parse": []},
    }


def button(item: PanelItem) -> dict[str, Any]:
    """The product's Buy button; for a product sold as a Discord SKU, Discord's premium
    button (style 6: no label, no custom_id; Discord shows the SKU and its price and sends
    the bot no interaction when pressed)."""
    if item.sku_id is not None:
        return {"type": 2, "style": 6, "sku_id": str(item.sku_id)}
    return {
        "type": 2,
        "style": 3,  # success (green)
        "label": _("Buy {product}", product=item.product.name)[:80],
        "custom_id": buy_custom_id(item.product.id),
    }


async def panel_item(tx: Tx, product: Product) -> PanelItem:
    actions = await tx.products.actions(product.id, Stage.ON_PURCHASE)
    roles = [a.role_id for a in actions if a.type == "grant_role" and a.role_id]
    link = await tx.skus.link_of_product(product.id)
    return PanelItem(
        product,
        await tx.products.units_left(product.id),
        roles,
        None if link is None else link.sku_id,
    )


async def panel_body(tx: Tx, panel: Panel) -> dict[str, Any]:
    """The panel as it should look now: removed (archived) products are left out."""
    items = []
    for product_id in panel.product_ids:
        product = await tx.products.get(product_id)
        if product is not None and not product.archived:
            items.append(await panel_item(tx, product))
    return render_panel(panel.title, items)


def parse_message_ref(ref: str) -> tuple[int | None, int]:
    """A message link (`https://discord.com/channels/G/C/M`) or id → (guild or None, message)."""
    ref = ref.strip().strip("<>")
    if (link := _MESSAGE_LINK.fullmatch(ref)) is not None:
        return int(link["guild"]), int(link["message"])
    if _MESSAGE_ID.fullmatch(ref):
        return None, int(ref)
    raise InvalidInput(
        N_("Give the panel's message link (right-click it → Copy Message Link) or its message id.")
    )


def clean_title(title: str | None) -> str:
    text = "".join(ch for ch in title or "" if unicodedata.category(ch) not in ("Cf", "Cc"))
    text = " ".join(text.split())
    if len(text) > MAX_TITLE:
        raise InvalidInput(N_("Panel titles can be at most {most} characters."), most=MAX_TITLE)
    return text or DEFAULT_TITLE


class PanelService:
    """Posts and removes panels; their edits are jobs (bot/planning.py, bot/delivery.py)."""

    def __init__(self, store: Store, shop: ShopService, discord: PanelPort) -> None:
        self.store = store
        self.shop = shop
        self.discord = discord

    async def choose(self, guild_id: int, refs: str | None) -> list[Product]:
        """Products named in a comma-separated list of names or ids (in that order), or every
        product for sale. Refuses unknown or paused ones, none at all, and more than fit."""
        if refs is None or not refs.strip():
            chosen = await self.shop.list_products(guild_id, active_only=True)
            if not chosen:
                raise NotFound(N_("Nothing is for sale here yet: add a product first."))
        else:
            chosen = []
            for ref in (part.strip() for part in refs.split(",")):
                if not ref:
                    continue
                product = await self.shop.resolve_product(guild_id, ref)
                if not product.active:
                    raise Conflict(
                        N_(
                            "**{product}** is not for sale; make it active with `/shop product "
                            "edit` first."
                        ),
                        product=product.name,
                    )
                if product.id not in {p.id for p in chosen}:
                    chosen.append(product)
            if not chosen:
                raise InvalidInput(N_("Name at least one product, separated by commas."))
        if len(chosen) > MAX_PRODUCTS:
            raise InvalidInput(
                N_(
                    "A panel shows at most {most} products (Discord allows {most} embeds per "
                    "message) and this would have {count}: name the ones to show in `products`, "
                    "separated by commas, and post several panels if you need to."
                ),
                most=MAX_PRODUCTS,
                count=len(chosen),
            )
        return chosen

    async def post(
        self,
        guild_id: int,
        actor_id: int,
        channel_id: int,
        products: str | None = None,
        title: str | None = None,
    ) -> Panel:
        """Post the panel in the channel and remember it; nothing is stored if Discord refuses."""
        heading = clean_title(title)
        chosen = await self.choose(guild_id, products)
        async with self.store.reading() as tx:
            items = [await panel_item(tx, product) for product in chosen]
            locale = await tx.locales.of(guild_id)  # a panel speaks the guild's language
        with use_locale(locale):
            body = render_panel(heading, items)
        try:
            message_id = await self.discord.post_message(channel_id, body)
        except PermanentFailure as exc:
            raise ShopError(
                N_(
                    "I could not post in <#{channel}> ({error}). Give the bot View Channel, Send "
                    "Messages and Embed Links there, then try again."
                ),
                channel=channel_id,
                error=exc,
            ) from None
        except DeliveryError as exc:
            raise ShopError(
                N_("Discord did not take the panel ({error}); try again."), error=exc
            ) from None
        try:
            async with self.store.transaction() as tx:
                panel = await tx.panels.add(
                    guild_id=guild_id,
                    channel_id=channel_id,
                    message_id=message_id,
                    title=heading,
                    product_ids=[p.id for p in chosen],
                    created_by=actor_id,
                )
                await tx.audit.add(
                    "panel.post",
                    guild_id=guild_id,
                    actor_id=actor_id,
                    panel_id=panel.id,
                    channel_id=channel_id,
                    message_id=message_id,
                    products=list(panel.product_ids),
                )
        except BaseException:
            try:  # an unremembered panel would never be updated: take it down again
                await self.discord.delete_message(channel_id, message_id)
            except DeliveryError:
                log.warning("panel message %s in channel %s is left over", message_id, channel_id)
            raise
        return panel

    async def remove(self, guild_id: int, actor_id: int, ref: str) -> Panel:
        """Delete the panel's message and forget it (a message already deleted is fine)."""
        link_guild, message_id = parse_message_ref(ref)
        panel = None
        if link_guild in (None, guild_id):
            async with self.store.reading() as tx:
                panel = await tx.panels.by_message(guild_id, message_id)
        if panel is None:
            raise NotFound(N_("That message is not a shop panel of this server."))
        try:
            await self.discord.delete_message(panel.channel_id, panel.message_id)
        except MessageGone:
            pass  # deleted by hand already: only our record is left
        except DeliveryError as exc:
            raise ShopError(
                N_("I could not delete the panel message ({error}); it is still there. Try again."),
                error=exc,
            ) from None
        async with self.store.transaction() as tx:
            await tx.panels.forget(panel.id)
            await tx.audit.add(
                "panel.remove",
                guild_id=guild_id,
                actor_id=actor_id,
                panel_id=panel.id,
                message_id=panel.message_id,
            )
        return panel
