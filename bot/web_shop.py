"""WebShop: what the web shop's pages show and do — storefronts, products, checkouts for
browser buyers (with or without a Discord login) and where each order stands."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.errors import Conflict, Forbidden, NotFound, PermanentFailure, TransientFailure
from bot.models import ActionType, Job, Kind, Order, OrderSource, OrderStatus, Product
from bot.shop import SealedJoin, ShopService
from bot.store import Store
from bot.vault import Vault

log = logging.getLogger(__name__)

INVITE_CACHE_SECONDS = 3600.0
#: The entitlement end that keeps someone out of the web shop (SPEC §7: never given back).
BARRED_REASON = "chargeback"


class WebDiscord(Protocol):
    """What the web shop asks Discord (implemented in bot/discord_adapter.py)."""

    async def is_banned(self, guild_id: int, user_id: int) -> bool: ...
    async def invite_url(self, guild_id: int, channel_id: int | None) -> str | None: ...
    def role_name(self, guild_id: int, role_id: int) -> str | None: ...


@dataclass(frozen=True, slots=True)
class WebBuyer:
    """A browser buyer logged in with Discord: who they are, and their access token."""

    user_id: int
    name: str
    access_token: str | None  # None: the login gave no guilds.join scope
    token_expires_at: datetime


@dataclass(frozen=True, slots=True)
class ProductView:
    product: Product
    price: str
    terms: str  # one-time / for N days / every month, with the trial
    roles: list[str]
    units_left: int | None

    @property
    def sold_out(self) -> bool:
        return self.units_left == 0


@dataclass(frozen=True, slots=True)
class Storefront:
    guild_id: int
    name: str
    products: list[ProductView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as its buyer's browser sees it, and what happens next (`state`)."""

    order: Order
    product: Product
    shop: Storefront
    price: str
    #: pending | joining | joined | member | join_failed | delivering | claim | closed | refunded
    state: str
    detail: str = ""  # why a join failed
    roles: list[str] = field(default_factory=list)


class WebShop:
    """The web shop's use cases; reaches data through the store and ShopService only."""

    def __init__(
        self,
        store: Store,
        shop: ShopService,
        discord: WebDiscord,
        vault: Vault,
        storefronts: Callable[[], list[tuple[int, str]]],
        guild_link: Callable[[int], str],
    ) -> None:
        self.store = store
        self.shop = shop
        self.discord = discord
        self.vault = vault
        self._storefronts = storefronts
        self.guild_link = guild_link
        self._invites: dict[int, tuple[float, str]] = {}

    # browsing ----------------------------------------------------------------------------

    def storefronts(self) -> list[Storefront]:
        """The servers this shop sells in, by name."""
        fronts = [Storefront(guild_id, name) for guild_id, name in self._storefronts()]
        return sorted(fronts, key=lambda front: front.name.casefold())

    def storefront(self, guild_id: int) -> Storefront:
        for front in self.storefronts():
            if front.guild_id == guild_id:
                return front
        raise NotFound("There is no shop here with that address.")

    async def with_products(self, front: Storefront) -> Storefront:
        """The storefront with its products for sale."""
        async with self.store.reading() as tx:
            products = await tx.products.list(front.guild_id, active_only=True)
        views = [await self._view(product) for product in products]
        return Storefront(front.guild_id, front.name, views)

    async def product(self, guild_id: int, product_id: int) -> tuple[Storefront, ProductView]:
        """A product of this guild that is for sale (NotFound / Conflict otherwise)."""
        front = self.storefront(guild_id)
        async with self.store.reading() as tx:
            product = await tx.products.get(product_id)
        if product is None or product.guild_id != guild_id or product.archived:
            raise NotFound("This shop has no such product.")
        if not product.active:
            raise Conflict(f"{product.name} is not for sale right now.")
        return front, await self._view(product)

    async def _view(self, product: Product) -> ProductView:
        roles = await self.shop.product_roles(product.id)
        names = [self.discord.role_name(product.guild_id, r) or "a server role" for r in roles]
        return ProductView(
            product=product,
            price=self.shop.describe_price(product),
            terms=_terms(product),
            roles=names,
            units_left=await self.shop.units_left(product.id),
        )

    # buying ------------------------------------------------------------------------------

    async def checkout(self, guild_id: int, product_id: int, buyer: WebBuyer | None) -> str:
        """Start a Stripe Checkout for this browser; return the URL to send it to.

        A logged-in buyer's checkout is bound to their Discord id like /buy's; refused when
        they are banned from the server or their access was revoked by a chargeback. Without
        a login the order has no buyer until someone claims it with its code.
        """
        front, view = await self.product(guild_id, product_id)
        join = None
        if buyer is not None:
            await self._refuse_if_barred(front, buyer.user_id)
            if buyer.access_token is not None:
                join = SealedJoin(
                    user_id=buyer.user_id,
                    ciphertext=self.vault.seal(buyer.access_token),
                    expires_at=buyer.token_expires_at,
                )
        order, _ = await self.shop.start_checkout(
            guild_id,
            None if buyer is None else buyer.user_id,
            str(view.product.id),
            source=OrderSource.WEB,
            join=join,
        )
        assert order.checkout_url is not None
        return order.checkout_url

    async def _refuse_if_barred(self, front: Storefront, user_id: int) -> None:
        async with self.store.reading() as tx:
            revoked = await tx.entitlements.revoked_for(front.guild_id, user_id, BARRED_REASON)
        if revoked:
            raise Forbidden(
                f"Your access to {front.name} was revoked after a chargeback, so this shop "
                "cannot sell to you. Contact the server's admins if you think this is wrong."
            )
        try:
            banned = await self.discord.is_banned(front.guild_id, user_id)
        except (PermanentFailure, TransientFailure) as exc:
            log.warning("could not check bans of guild %s: %s", front.guild_id, exc)
            raise Conflict(
                "We could not check your access to the server right now; nothing was "
                "charged. Please try again in a minute."
            ) from None
        if banned:
            raise Forbidden(f"You are banned from {front.name}, so this shop cannot sell to you.")

    async def cancel(self, order_id: int, token: str) -> OrderView:
        """The cancel page: expire the checkout at Stripe and close the order."""
        await self.shop.cancel_checkout(order_id, token)
        view = await self._order_view(order_id=order_id)
        if view is None:
            raise NotFound("We could not find that checkout.")
        return view

    # where an order stands -----------------------------------------------------------------

    async def order_by_session(self, session_id: str) -> OrderView:
        view = await self._order_view(session_id=session_id) if session_id else None
        if view is None:
            raise NotFound("We could not find that order.")
        return view

    async def _order_view(
        self, *, session_id: str | None = None, order_id: int | None = None
    ) -> OrderView | None:
        async with self.store.reading() as tx:
            if session_id is not None:
                order = await tx.orders.by_session(session_id)
            else:
                order = await tx.orders.get(order_id or 0)
            if order is None:
                return None
            product = await tx.products.get(order.product_id)
            joins: list[Job] = []
            if order.recipient_id is not None:
                jobs = await tx.jobs.of_member(
                    order.guild_id,
                    order.recipient_id,
                    ("pending", "running", "completed", "failed", "canceled", "expired"),
                )
                joins = [j for j in jobs if j.order_id == order.id and j.kind == "add_member"]
            added = await tx.audit.latest_of_order("member.added", order.id)
        if product is None:
            return None
        name = self._guild_name(order.guild_id)
        front = Storefront(order.guild_id, name)
        state, detail = _state(order, joins[-1] if joins else None)
        if state == "joined" and added is not None and added.detail.get("result") != "added":
            state = "member"
        roles = [
            self.discord.role_name(order.guild_id, role) or "server"
            for role in await self.shop.product_roles(product.id)
        ]
        return OrderView(
            order=order,
            product=product,
            shop=front,
            price=self.shop.describe_price(product),
            state=state,
            detail=detail,
            roles=roles,
        )

    def _guild_name(self, guild_id: int) -> str:
        for front in self.storefronts():
            if front.guild_id == guild_id:
                return front.name
        return "the server"

    async def invite(self, guild_id: int, product_id: int | None = None) -> str:
        """A way into the server: vanity URL or an invite to a product's create_invite
        channel (cached for an hour); else the guild's link."""
        cached = self._invites.get(guild_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        channel_id = None
        async with self.store.reading() as tx:
            products = await tx.products.list(guild_id, active_only=True)
            ordered = sorted(products, key=lambda p: p.id != product_id)
            for product in ordered:
                for action in await tx.products.actions(product.id, "on_purchase"):
                    if action.type == ActionType.CREATE_INVITE and action.channel_id:
                        channel_id = action.channel_id
                        break
                if channel_id is not None:
                    break
        try:
            url = await self.discord.invite_url(guild_id, channel_id)
        except (PermanentFailure, TransientFailure) as exc:
            log.info("no invite for guild %s: %s", guild_id, exc)
            url = None
        if url is None:
            return self.guild_link(guild_id)
        self._invites[guild_id] = (time.monotonic() + INVITE_CACHE_SECONDS, url)
        return url


def _state(order: Order, join: Job | None) -> tuple[str, str]:
    if order.status == OrderStatus.PENDING:
        return "pending", ""
    if order.status in (OrderStatus.EXPIRED, OrderStatus.FAILED):
        return "closed", ""
    if order.status in (OrderStatus.REFUNDED, OrderStatus.DISPUTED):
        return "refunded", ""
    if order.recipient_id is None:
        return "claim", ""
    if join is None:
        return "delivering", ""
    if join.status == "completed":
        return "joined", ""
    if join.status in ("pending", "running"):
        return "joining", ""
    return "join_failed", join.last_error or ""


def _terms(product: Product) -> str:
    if product.kind == Kind.SUBSCRIPTION:
        trial = f", {product.trial_days}-day free trial" if product.trial_days else ""
        return f"Subscription, renews every {product.interval}{trial}; cancel any time"
    if product.kind == Kind.TIMED:
        return f"One payment, access for {product.duration_days} days"
    return "One payment, access for good"


def token_expiry(now: datetime, expires_in: int) -> datetime:
    """When a fresh access token stops working (Discord's default: 7 days)."""
    return now + timedelta(seconds=expires_in or 7 * 86400)
