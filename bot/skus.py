"""Discord's own store (SPEC §6b): SKUs linked to products, entitlements → orders (source
`sku`), and reconciling with Discord's list of entitlements at start and hourly.

Ordering rule (the one bot/lifecycle.py applies to Stripe): Discord's entitlement events
come late, twice and out of order, so none is taken as "the next step". Each report of an
entitlement (ENTITLEMENT_CREATE/UPDATE/DELETE, or a row of the listing) is first stored as a
fact, merged so that `deleted` and `consumed` only turn true and `ends_at` only moves later
(`SkuRepo.merge`); then every guild's order of that entitlement is *settled* from the merged
facts: an order is made once per (entitlement, guild) (a unique key), access ends once
`ends_at` has passed, and a deleted entitlement refunds the order. Settling only moves
forward (bot/access.py ranks the ends), so one set of reports gives the same orders, jobs and
roles in any order and any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.access import EXPIRED, REFUND, Access
from bot.clock import Clock
from bot.errors import Conflict, InvalidInput, NotFound
from bot.fulfilment import Fulfilment
from bot.i18n import N_, _
from bot.models import NO_BUYER, OrderSource, OrderStatus, Product
from bot.planning import Planner, in_guild_locale
from bot.shop import ShopService
from bot.store import Duplicate, Store, Tx
from bot.store.skus import DiscordEntitlement, SkuLink

log = logging.getLogger(__name__)

#: SKU types (FACTS.md "Discord native monetization").
DURABLE, CONSUMABLE, SUBSCRIPTION, SUBSCRIPTION_GROUP = 2, 3, 5, 6
SKU_TYPE_NAMES = {
    DURABLE: "durable",
    CONSUMABLE: "consumable",
    SUBSCRIPTION: "subscription",
    SUBSCRIPTION_GROUP: "subscription group",
}
#: Discord lists at most this many entitlements a page.
PAGE = 100


class DiscordStore(Protocol):
    """What this needs from Discord (bot/discord_adapter.py)."""

    async def list_skus(self) -> list[dict[str, Any]]: ...
    async def list_entitlements(self, after: int, limit: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class SkuRow:
    """One SKU of the app for `/shop sku list`."""

    sku_id: int
    name: str
    type_name: str
    product: str | None  # the product of this guild it is sold as


@dataclass(frozen=True, slots=True)
class ServerEntitlement:
    """A guild's own entitlement (a server subscription): recorded, no member roles."""

    entitlement_id: int
    sku_name: str
    active: bool


__all__ = ["DiscordEntitlement", "ServerEntitlement", "SkuLink", "SkuRow", "SkuService"]


def type_name(sku_type: int) -> str:
    return SKU_TYPE_NAMES.get(sku_type, f"type {sku_type}")


class SkuService:
    """Links, entitlement reports, and the reconciliation loop (supervised by bot/app.py)."""

    def __init__(
        self,
        store: Store,
        shop: ShopService,
        fulfilment: Fulfilment,
        access: Access,
        planner: Planner,
        discord: DiscordStore,
        clock: Clock,
        interval: timedelta = timedelta(hours=1),
        *,
        recheck: timedelta | None = None,
    ) -> None:
        self.store = store
        self.shop = shop
        self.fulfilment = fulfilment
        self.access = access
        self.planner = planner
        self.discord = discord
        self.clock = clock
        self.interval = interval
        self._reported = asyncio.Event()  # a report came in: an end may now be sooner
        #: Set when this process gets no entitlement events (it runs no shard 0): reports
        #: reach the database through another process, so re-read the next end this often.
        self.recheck = recheck

    # /shop sku ---------------------------------------------------------------------

    async def _sku(self, ref: str) -> dict[str, Any]:
        """The app's SKU with this id (or exact name); NotFound for any other."""
        ref = (ref or "").strip()
        skus = await self.discord.list_skus()
        for sku in skus:
            if ref == str(sku["id"]) or ref.casefold() == str(sku.get("name", "")).casefold():
                return sku
        raise NotFound(
            N_(
                "This app has no SKU `{ref}`. `/shop sku list` shows the SKUs made in the "
                "Developer Portal (Monetization → SKUs)."
            ),
            ref=ref[:40],
        )

    async def catalogue(self, guild_id: int) -> list[SkuRow]:
        """Every SKU of the app, with the product of this guild each is sold as."""
        skus = await self.discord.list_skus()
        async with self.store.reading() as tx:
            links = {link.sku_id: link for link in await tx.skus.links_of_guild(guild_id)}
            names: dict[int, str] = {}
            for link in links.values():
                product = await tx.products.get(link.product_id)
                names[link.sku_id] = product.name if product else "?"
        return [
            SkuRow(
                int(s["id"]),
                str(s.get("name", "")),
                type_name(int(s["type"])),
                names.get(int(s["id"])),
            )
            for s in skus
        ]

    async def link(
        self, guild_id: int, actor_id: int, sku_ref: str, product_ref: str
    ) -> tuple[SkuLink, Product]:
        """Sell the product as this SKU; entitlements already known are delivered now."""
        sku = await self._sku(sku_ref)
        sku_type = int(sku["type"])
        if sku_type == SUBSCRIPTION_GROUP:
            raise InvalidInput(
                N_("`{sku}` is a subscription group; link the subscription SKU in it."),
                sku=sku.get("name"),
            )
        product = await self.shop.resolve_product(guild_id, product_ref)
        sku_id = int(sku["id"])
        async with self.store.transaction() as tx:
            current = await tx.skus.link_of_product(product.id)
            if current is not None and current.sku_id != sku_id:
                raise Conflict(
                    N_(
                        "**{product}** is already sold as SKU `{sku}`; `/shop sku unlink` it first."
                    ),
                    product=product.name,
                    sku=current.sku_name,
                )
            try:
                await tx.skus.link(
                    guild_id, sku_id, product.id, sku_type, str(sku["name"]), actor_id
                )
            except Duplicate:
                raise Conflict(
                    N_("**{product}** is already sold as another SKU."), product=product.name
                ) from None
            await tx.audit.add(
                "sku.link", guild_id=guild_id, actor_id=actor_id, sku_id=sku_id,
                product_id=product.id,
            )  # fmt: skip
            await self.planner.refresh_panels(tx, product.id)
            known = await tx.skus.entitlement_ids()
        for entitlement_id in known:
            await self.settle(entitlement_id)
        return SkuLink(guild_id, sku_id, product.id, sku_type, str(sku["name"])), product

    async def unlink(self, guild_id: int, actor_id: int, sku_ref: str) -> SkuLink:
        """Stop selling the SKU here (orders it made stay; later entitlements make none)."""
        sku = await self._sku(sku_ref)
        async with self.store.transaction() as tx:
            links = {link.sku_id: link for link in await tx.skus.links_of_guild(guild_id)}
            link = links.get(int(sku["id"]))
            if link is None or not await tx.skus.unlink(guild_id, link.sku_id):
                raise NotFound(
                    N_("SKU `{sku}` is not linked to a product here."), sku=sku.get("name")
                )
            await tx.audit.add(
                "sku.unlink", guild_id=guild_id, actor_id=actor_id, sku_id=link.sku_id,
                product_id=link.product_id,
            )  # fmt: skip
            await self.planner.refresh_panels(tx, link.product_id)
        return link

    async def server_entitlements(self, guild_id: int) -> list[ServerEntitlement]:
        """The guild's own entitlements, for `/shop diagnose` and `/shop stats`."""
        async with self.store.reading() as tx:
            rows = await tx.skus.guild_owned(guild_id)
            now = tx.now
        return [ServerEntitlement(e.id, name, e.entitled(now)) for e, name in rows]

    async def premium_sku(self, product_id: int) -> int | None:
        """The SKU a product is sold as (its /buy and panel show a premium button)."""
        async with self.store.reading() as tx:
            link = await tx.skus.link_of_product(product_id)
        return None if link is None else link.sku_id

    # entitlement reports --------------------------------------------------------------

    async def receive(self, data: dict[str, Any], source: str) -> None:
        """A report of an entitlement: stored first (its own transaction), then settled. A
        settle that fails is done again by the next reconciliation (the fact is kept)."""
        if not data.get("id") or not data.get("sku_id"):
            log.warning("ignored an entitlement report without id or sku_id (%s)", source)
            return
        async with self.store.transaction() as tx:
            await tx.skus.merge(data)
        await self.settle(int(data["id"]), source)
        self._reported.set()
        log.debug("entitlement %s settled after %s", data["id"], source)

    async def settle(self, entitlement_id: int, source: str = "settle") -> None:
        """Bring every guild's order of the entitlement in line with the merged facts."""
        async with self.store.transaction() as tx:
            entitlement = await tx.skus.entitlement(entitlement_id)
            if entitlement is None:
                return
            links = await tx.skus.links_of_sku(entitlement.sku_id)
            if entitlement.guild_id is not None:  # a server's: only that server's link
                links = [link for link in links if link.guild_id == entitlement.guild_id]
            for link in links:
                await self._settle_in(tx, entitlement, link, source)

    async def _settle_in(
        self, tx: Tx, entitlement: DiscordEntitlement, link: SkuLink, source: str
    ) -> None:
        order_id = await tx.skus.order_of(entitlement.id, link.guild_id)
        if order_id is None:
            if not entitlement.entitled(tx.now):
                return  # ended or refunded before we ever saw it: nothing to deliver
            product = await tx.products.get(link.product_id)
            if product is None or product.archived:
                log.warning(
                    "SKU %s is linked to a removed product in guild %s; entitlement %s "
                    "not delivered",
                    link.sku_id,
                    link.guild_id,
                    entitlement.id,
                )
                return
            order = await tx.orders.create(
                guild_id=link.guild_id,
                buyer_id=entitlement.user_id or NO_BUYER,
                recipient_id=entitlement.user_id,
                product_id=product.id,
                amount=0,  # Discord is the merchant: what it charged is not ours to know
                currency=product.currency,
                source=OrderSource.SKU,
            )
            await tx.skus.record_order(entitlement.id, link.guild_id, order.id)
            event = f"entitlement:{entitlement.id}:{source}"
            await self.fulfilment.order_paid(tx, order, event, source="Discord SKU")
            if entitlement.user_id is None:  # a server's own: no member, no roles
                await tx.orders.update(order.id, claim_code=None)
                if link.sku_type == CONSUMABLE:
                    await self.planner.consume_entitlement(tx, link.guild_id, 0, entitlement.id)
            order_id = order.id
        current = await tx.orders.get(order_id)
        assert current is not None
        order = current
        granted = await tx.entitlements.by_order(order.id)
        if entitlement.deleted:
            await self._refund(tx, order, granted, entitlement)
            return
        if granted is None or entitlement.ends_at is None:
            return
        await tx.entitlements.extend_to(granted.id, entitlement.ends_at)
        if entitlement.ends_at <= tx.now:
            # EXPIRED, the same end the expiry pass gives an `ends_at` that passed, so
            # whichever of the two gets there first, the member is told once.
            await self.access.end(tx, order, granted, EXPIRED)

    async def _refund(
        self, tx: Tx, order: Any, granted: Any, entitlement: DiscordEntitlement
    ) -> None:
        """Discord deleted the entitlement (a refund): paid → refunded once, on_refund."""
        if await tx.orders.update(
            order.id, only_if_status=(OrderStatus.PAID,), status=OrderStatus.REFUNDED
        ):
            await tx.audit.add(
                "order.refunded", guild_id=order.guild_id, user_id=order.recipient_id,
                order_id=order.id, event_id=f"entitlement:{entitlement.id}:deleted",
            )  # fmt: skip
            await self.planner.log(
                tx,
                order.guild_id,
                "refund",
                await in_guild_locale(
                    tx,
                    order.guild_id,
                    lambda: (
                        _(
                            "↩️ Discord refunded order #{order} of <@{member}> (entitlement "
                            "{entitlement})",
                            order=order.id,
                            member=order.recipient_id,
                            entitlement=entitlement.id,
                        )
                        if order.recipient_id
                        else _(
                            "↩️ Discord refunded order #{order} of the server (entitlement "
                            "{entitlement})",
                            order=order.id,
                            entitlement=entitlement.id,
                        )
                    ),
                ),
                key=f"order:{order.id}:log:refund",
            )
        if granted is not None:
            await self.access.end(tx, order, granted, REFUND)

    # reconciliation -----------------------------------------------------------------

    async def _listing(self) -> AsyncIterator[dict[str, Any]]:
        """Every entitlement of the app, deleted ones too, oldest first."""
        after = 0
        while True:
            page = await self.discord.list_entitlements(after, PAGE)
            for item in page:
                yield item
            if len(page) < PAGE:
                return
            after = max(int(item["id"]) for item in page)

    async def reconcile(self) -> int:
        """Fold Discord's list into ours: a missed purchase is delivered, a deleted one
        refunded, a passed `ends_at` ended. Returns how many were listed."""
        listed = 0
        async for item in self._listing():
            listed += 1
            await self.receive(item, "list")
        async with self.store.reading() as tx:
            known = await tx.skus.entitlement_ids()
        for entitlement_id in known:  # ends that passed since the last report
            await self.settle(entitlement_id)
        log.info("reconciled %d Discord entitlements", listed)
        return listed

    async def end_due(self, after: datetime, until: datetime) -> int:
        """Settle the entitlements whose `ends_at` fell in (after, until]: access ends on
        time with the subscription's true reason (the expiry pass, which knows nothing of
        Discord, would only get there after the grace period, as a lapse)."""
        async with self.store.reading() as tx:
            due = await tx.skus.ending_between(after, until)
        for entitlement_id in due:
            await self.settle(entitlement_id)
        return len(due)

    async def run(self) -> None:
        """Forever: reconcile at start (retried with backoff) and every `interval`; in
        between, wake at each entitlement's `ends_at` and end it then."""
        delay = 5.0
        while True:
            try:
                await self.reconcile()
                delay = 5.0
                await self._until_next_reconcile()
            except Exception:
                log.warning("reconciling Discord entitlements failed; trying again in %.0f s",
                            delay, exc_info=True)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 600.0)

    def wake_at(self, checked: datetime, deadline: datetime, next_end: datetime | None) -> datetime:
        """When the loop looks again: the next reconcile, the next entitlement end, or (in a
        process without shard 0, which hears of no report) `recheck` after the last look."""
        wake = deadline if next_end is None else min(deadline, next_end)
        return wake if self.recheck is None else min(wake, checked + self.recheck)

    async def _until_next_reconcile(self) -> None:
        checked = self.clock.now()
        deadline = checked + self.interval
        while checked < deadline:
            async with self.store.reading() as tx:
                next_end = await tx.skus.next_end(checked)
            wake_at = self.wake_at(checked, deadline, next_end)
            self._reported.clear()
            seconds = max(0.05, (wake_at - self.clock.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reported.wait(), seconds)
            now = self.clock.now()
            await self.end_due(checked, now)
            checked = now
