"""ShopService: the catalog, starting checkouts, claims and what a member owns."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import unicodedata
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.errors import Conflict, InvalidInput, NotFound, PaymentError
from bot.i18n import N_
from bot.models import (
    NO_BUYER,
    Kind,
    Order,
    OrderSource,
    OrderStatus,
    Product,
)
from bot.money import format_price, normalize_currency, parse_price
from bot.payments import CheckoutRequest, PaymentGateway
from bot.planning import Planner
from bot.store import Duplicate, Store, Tx

log = logging.getLogger(__name__)

MAX_NAME = 80
MAX_DESCRIPTION = 500
MAX_STOCK = 1_000_000
MAX_DAYS = 3650
MAX_IMAGE_URL = 1000
#: 32 symbols (5 bits each) without the look-alikes 0/O and 1/I.
CLAIM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CLAIM_GROUPS = 4  # of 4 symbols: 16 × 5 = 80 bits of randomness (SPEC §3: ≥ 64)
LEGACY_CLAIM_LENGTH = 8  # codes issued before: 40 bits, still accepted
_PRODUCT_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only: "²".isdigit() is True


@dataclass(frozen=True, slots=True)
class ProductDraft:
    """Validated input for a new product."""

    name: str
    price: str
    currency: str | None = None
    role_id: int | None = None
    kind: str = Kind.ONE_TIME
    interval: str | None = None
    duration_days: int | None = None
    trial_days: int | None = None
    description: str | None = None
    stock: int | None = None
    allow_promotion_codes: bool = False
    image_url: str | None = None
    max_devices: int = 1  # machines one of its license keys may be validated on


@dataclass(frozen=True, slots=True)
class SealedJoin:
    """A web buyer's Discord access token, already encrypted (bot/vault.py), to add them to
    the server once they have paid."""

    user_id: int
    ciphertext: str
    expires_at: datetime


def checkout_lifetime(minutes: int) -> timedelta:
    """Stripe accepts 30 min … 24 h from when it receives the request: keep a minute's margin."""
    return timedelta(seconds=min(max(minutes * 60, 31 * 60), 24 * 3600 - 60))


def new_claim_code() -> str:
    """A fresh claim code like `ABCD-EFGH-JKLM-NPQR`, drawn from `secrets`."""
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(CLAIM_GROUPS * 4))
    return format_claim_code(raw)


def format_claim_code(raw: str) -> str:
    """Symbols → the stored form: groups of four joined by dashes."""
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


# stock ---------------------------------------------------------------------------------
#
# A pending order holds one unit of its product (the `stock` column counts what is left
# after those reservations) and, when the product delivers license keys, one key set aside
# for it. The reservation is taken in the transaction that writes the pending order, kept
# when the order is paid, and given back when it fails, expires, or is abandoned
# (`close_unpaid`). A payment for an order whose reservation was already given back takes
# stock again; if none is left the buyer is still served, and the admin is told.

SOLD_OUT = "sold out"
#: A checkout link is given again by /buy while it has at least this long left to live.
REUSE_LINK_MARGIN = timedelta(minutes=5)
NO_FREE_KEY = "no free license key"


async def reserve_stock(tx: Tx, order: Order) -> str | None:
    """Hold one unit (and a license key if the product delivers them) for `order`.

    None when held; else why not (`SOLD_OUT`, `NO_FREE_KEY`). Whatever could be taken
    stays taken: the caller rolls back (checkout) or honours the sale anyway (payment).
    """
    shortage = None
    if not await tx.products.take_stock(order.product_id):
        shortage = SOLD_OUT
    if await tx.products.delivers_licenses(order.product_id) and not (
        await tx.products.reserve_license(order.product_id, order.id)
    ):
        shortage = shortage or NO_FREE_KEY
    return shortage


async def close_unpaid(
    tx: Tx, order: Order, status: str, reason: str, event_id: str | None = None
) -> bool:
    """pending → failed/expired, and its stock and license key given back; once only.

    Compare-and-set on `pending`, so a late or repeated close changes nothing (and never
    touches an order that was paid meanwhile). Returns whether the order changed.
    """
    changed = await tx.orders.update(
        order.id, only_if_status=(OrderStatus.PENDING,), status=status, failure_reason=reason
    )
    if changed:
        await tx.products.return_stock(order.product_id)
        await tx.products.release_license(order.id)
        await tx.join_tokens.drop(order.id)  # the buyer will not be added: forget the token
        await tx.audit.add(
            f"order.{status}",
            guild_id=order.guild_id,
            user_id=order.recipient_id,
            order_id=order.id,
            event_id=event_id,
            reason=reason,
        )
    return changed


def _clean_name(name: str) -> str:
    # Drop invisible format/control characters (zero-width spaces etc.), fold whitespace.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cf", "Cc"))
    name = " ".join(name.split())
    if not name:
        raise InvalidInput(N_("The product needs a name."))
    if len(name) > MAX_NAME:
        raise InvalidInput(N_("Product names can be at most {most} characters."), most=MAX_NAME)
    return name


def clean_image_url(url: str) -> str | None:
    """An image for the product's embed: an absolute http(s) URL; empty → None (no image)."""
    url = url.strip()
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise InvalidInput(N_("`image_url` must be a web address starting with https://."))
    if len(url) > MAX_IMAGE_URL:
        raise InvalidInput(N_("`image_url` can be at most {most} characters."), most=MAX_IMAGE_URL)
    return url


def describe_price(product: Product) -> str:
    """The price with its kind: `$4.99`, `$4.99 / month`, `$4.99 for 30 days`."""
    price = format_price(product.price_amount, product.currency)
    if product.kind == Kind.SUBSCRIPTION:
        return f"{price} / {product.interval}"
    if product.kind == Kind.TIMED:
        return f"{price} for {product.duration_days} days"
    return price


def _check_range(label: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidInput(
            N_("`{label}` must be between {low} and {high}."), label=label, low=low, high=high
        )


class ShopService:
    """Business rules for the catalog and for buying; imports nothing from discord."""

    def __init__(
        self,
        store: Store,
        payments: PaymentGateway,
        settings: Settings,
        clock: Clock,
        planner: Planner,
    ) -> None:
        self.store = store
        self.payments = payments
        self.settings = settings
        self.clock = clock
        self.planner = planner  # panels showing a changed product are edited (a job)

    # catalog -------------------------------------------------------------------------

    async def add_product(self, guild_id: int, actor_id: int, draft: ProductDraft) -> Product:
        """Validate and create a product (+ its grant_role action); nothing is written on error."""
        name = _clean_name(draft.name)
        currency = normalize_currency(draft.currency or self.settings.shop.default_currency)
        amount = parse_price(draft.price, currency)
        if draft.kind not in set(Kind):
            raise InvalidInput(N_("`kind` must be one_time, timed or subscription."))
        if draft.kind == Kind.SUBSCRIPTION and not draft.interval:
            raise InvalidInput(N_("A subscription needs an `interval` (day, week, month or year)."))
        if draft.kind != Kind.SUBSCRIPTION and (draft.interval or draft.trial_days):
            raise InvalidInput(N_("`interval` and `trial_days` only apply to subscriptions."))
        if draft.kind == Kind.TIMED and not draft.duration_days:
            raise InvalidInput(N_("Timed access needs `duration_days`."))
        if draft.kind != Kind.TIMED and draft.duration_days:
            raise InvalidInput(N_("`duration_days` only applies to the timed kind."))
        _check_range("duration_days", draft.duration_days, 1, MAX_DAYS)
        _check_range("trial_days", draft.trial_days, 1, 730)
        _check_range("stock", draft.stock, 0, MAX_STOCK)
        _check_range("max_devices", draft.max_devices, 1, 1000)
        description = (draft.description or "").strip()
        if len(description) > MAX_DESCRIPTION:
            raise InvalidInput(
                N_("Descriptions can be at most {most} characters."), most=MAX_DESCRIPTION
            )
        image_url = clean_image_url(draft.image_url or "")
        try:
            async with self.store.transaction() as tx:
                product = await tx.products.add(
                    guild_id=guild_id,
                    name=name,
                    description=description,
                    price_amount=amount,
                    currency=currency,
                    kind=draft.kind,
                    interval=draft.interval,
                    duration_days=draft.duration_days,
                    trial_days=draft.trial_days,
                    stock=draft.stock,
                    allow_promotion_codes=int(draft.allow_promotion_codes),
                    image_url=image_url,
                    max_devices=draft.max_devices,
                )
                if draft.role_id is not None:
                    await tx.products.add_action(
                        product.id, type="grant_role", stage="on_purchase", role_id=draft.role_id
                    )
                await tx.audit.add(
                    "product.add",
                    guild_id=guild_id,
                    actor_id=actor_id,
                    product_id=product.id,
                    name=name,
                    amount=amount,
                    currency=currency,
                    role_id=draft.role_id,
                )
        except Duplicate:
            raise Conflict(
                N_("A product named **{name}** already exists here."), name=name
            ) from None
        return product

    async def edit_product(self, guild_id: int, actor_id: int, ref: str, **changes: Any) -> Product:
        """Apply the given (non-None) changes; the price is parsed in the product's currency."""
        product = await self.resolve_product(guild_id, ref)
        updates: dict[str, Any] = {}
        if changes.get("name") is not None:
            updates["name"] = _clean_name(changes["name"])
        if changes.get("price") is not None:
            if product.kind == Kind.SUBSCRIPTION and product.stripe_price_id:
                raise InvalidInput(
                    N_("This subscription uses a Stripe price; change it in Stripe.")
                )
            updates["price_amount"] = parse_price(changes["price"], product.currency)
        if changes.get("description") is not None:
            description = changes["description"].strip()
            if len(description) > MAX_DESCRIPTION:
                raise InvalidInput(
                    N_("Descriptions can be at most {most} characters."), most=MAX_DESCRIPTION
                )
            updates["description"] = description
        if changes.get("stock") is not None:
            _check_range("stock", changes["stock"], 0, MAX_STOCK)
            updates["stock"] = changes["stock"]
        if changes.get("active") is not None:
            updates["active"] = int(bool(changes["active"]))
        if changes.get("allow_promotion_codes") is not None:
            updates["allow_promotion_codes"] = int(bool(changes["allow_promotion_codes"]))
        if changes.get("image_url") is not None:
            url = changes["image_url"].strip()
            updates["image_url"] = None if url.casefold() == "none" else clean_image_url(url)
        role_id = changes.get("role_id")
        if not updates and role_id is None:
            raise InvalidInput(N_("Nothing to change: give at least one option to edit."))
        try:
            async with self.store.transaction() as tx:
                if updates:
                    product = await tx.products.update(product.id, **updates)
                if role_id is not None:
                    await self._replace_role(tx, product, role_id)
                await tx.audit.add(
                    "product.edit",
                    guild_id=guild_id,
                    actor_id=actor_id,
                    product_id=product.id,
                    changes={**updates, **({"role_id": role_id} if role_id else {})},
                )
                await self.planner.refresh_panels(tx, product.id)
        except Duplicate:
            raise Conflict(
                N_("A product named **{name}** already exists."), name=updates.get("name")
            ) from None
        return product

    async def _replace_role(self, tx: Tx, product: Product, role_id: int) -> None:
        """The role new buyers get: the product's first on_purchase grant_role action is
        replaced (keeping its revoke_on), or one is added. Roles already given stay given,
        and are still taken back by the removed action's rules when access ends."""
        actions = await tx.products.actions(product.id, "on_purchase")
        current = next((a for a in actions if a.type == "grant_role"), None)
        if current is not None and current.role_id == role_id:
            return
        extra: dict[str, Any] = {}
        if current is not None:
            await tx.products.remove_action(current.id)
            extra["revoke_on"] = current.revoke_on
        await tx.products.add_action(
            product.id, type="grant_role", stage="on_purchase", role_id=role_id, **extra
        )

    async def remove_product(self, guild_id: int, actor_id: int, ref: str) -> Product:
        """Archive: no longer for sale or listed; orders and entitlements stay."""
        product = await self.resolve_product(guild_id, ref)
        async with self.store.transaction() as tx:
            await tx.products.archive(product.id)
            await tx.audit.add(
                "product.remove",
                guild_id=guild_id,
                actor_id=actor_id,
                product_id=product.id,
                name=product.name,
            )
            await self.planner.refresh_panels(tx, product.id)
        return product

    async def list_products(self, guild_id: int, *, active_only: bool = False) -> list[Product]:
        async with self.store.reading() as tx:
            return await tx.products.list(guild_id, active_only=active_only)

    async def count_products(self) -> int:
        """Live products of every guild (for the ready line in the log)."""
        async with self.store.reading() as tx:
            return len(await tx.products.live_in_every_guild())

    async def units_left(self, product_id: int) -> int | None:
        """How many can still be bought (None = unlimited; 0 = sold out), net of open
        checkouts and, for license keys, of keys held by them."""
        async with self.store.reading() as tx:
            return await tx.products.units_left(product_id)

    async def product_roles(self, product_id: int) -> list[int]:
        async with self.store.reading() as tx:
            actions = await tx.products.actions(product_id, "on_purchase")
        return [a.role_id for a in actions if a.type == "grant_role" and a.role_id]

    async def resolve_product(self, guild_id: int, ref: str, *, for_sale: bool = False) -> Product:
        """A product of this guild by id (what autocomplete sends) or by name."""
        ref = (ref or "").strip()
        async with self.store.reading() as tx:
            product = None
            if _PRODUCT_ID.fullmatch(ref):
                product = await tx.products.get(int(ref))
                if product and (product.guild_id != guild_id or product.archived):
                    product = None
            if product is None:
                product = await tx.products.by_name(guild_id, ref)
        if product is None:
            raise NotFound(N_("There is no product called `{ref}` here."), ref=ref[:MAX_NAME])
        if for_sale and not product.active:
            raise Conflict(N_("**{product}** is not for sale right now."), product=product.name)
        return product

    # buying --------------------------------------------------------------------------

    async def start_checkout(
        self,
        guild_id: int,
        buyer_id: int | None,
        ref: str,
        gift_to: int | None = None,
        *,
        source: str = OrderSource.DISCORD,
        join: SealedJoin | None = None,
    ) -> tuple[Order, Product]:
        """Create a pending order and its Stripe Checkout Session; return the order with its URL.

        The order and its stock reservation are written in one transaction: when none is
        left (or no free license key) nothing is written and the buyer is told it is sold
        out. If the session cannot be created (Stripe error, cancellation, anything) the
        order is marked failed and its reservation given back; a process that died here
        leaves a pending order that the expiry loop closes once its link's time is up.

        `buyer_id` None: a web buyer without a Discord login; the order has no buyer or
        recipient until someone claims it with its code. `join`: the web buyer's sealed
        access token, kept with the order so the paid order can add them to the server.
        """
        product = await self.resolve_product(guild_id, ref, for_sale=True)
        recipient = gift_to or buyer_id
        now = self.clock.now()
        expires_at = now + checkout_lifetime(self.settings.shop.checkout_expiry_minutes)
        async with self.store.transaction() as tx:
            if buyer_id is not None and recipient is not None:
                open_orders = await tx.orders.open_checkouts(guild_id, buyer_id)
                if join is None:
                    still_open = _open_link(open_orders, recipient, product, tx.now)
                    if still_open is not None:
                        return still_open, product
                await self._refuse_if_busy(tx, guild_id, open_orders, recipient, product)
            order = await tx.orders.create(
                guild_id=guild_id,
                buyer_id=NO_BUYER if buyer_id is None else buyer_id,
                recipient_id=recipient,
                product_id=product.id,
                amount=product.price_amount,
                currency=product.currency,
                source=source,
                cancel_token=secrets.token_urlsafe(16),
            )
            if await reserve_stock(tx, order) is not None:
                raise Conflict(
                    N_("**{product}** is sold out."), product=product.name
                )  # rolls the order back
            await tx.orders.update(order.id, checkout_expires_at=expires_at)
            if await tx.products.units_left(product.id) == 0:  # that was the last one
                await self.planner.refresh_panels(tx, product.id)
            if join is not None:
                await tx.join_tokens.put(order.id, join.user_id, join.ciphertext, join.expires_at)
            order = await tx.orders.get(order.id) or order
        base = self.settings.http.public_url
        try:
            customer_id = None if buyer_id is None else await self.customer_of(buyer_id)
            request = CheckoutRequest(
                order_id=order.id,
                install_id=self.store.install_id,
                customer_id=customer_id,
                guild_id=guild_id,
                buyer_id=buyer_id,
                recipient_id=recipient,
                product_id=product.id,
                product_name=product.name,
                description=product.description,
                amount=product.price_amount,
                currency=product.currency,
                mode="subscription" if product.kind == Kind.SUBSCRIPTION else "payment",
                interval=product.interval,
                trial_days=product.trial_days,
                stripe_price_id=product.stripe_price_id,
                allow_promotion_codes=product.allow_promotion_codes,
                success_url=f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=(f"{base}/checkout/cancel?order={order.id}&token={order.cancel_token}"),
                expires_at=expires_at,
            )
            session = await self.payments.create_checkout(request)
        except BaseException as exc:
            reason = (
                exc.user_message
                if isinstance(exc, PaymentError)
                else "the checkout could not be created"
            )
            # Shielded: a cancellation (shutdown, a closed interaction) must not skip it.
            await asyncio.shield(self._abandon(order, reason))
            raise
        async with self.store.transaction() as tx:
            await tx.orders.update(order.id, stripe_session_id=session.id, checkout_url=session.url)
            await tx.audit.add(
                "checkout.start",
                guild_id=guild_id,
                user_id=recipient,
                actor_id=buyer_id,
                order_id=order.id,
                session_id=session.id,
                source=source,
            )
            started = await tx.orders.get(order.id)
        assert started is not None
        return started, product

    async def cancel_checkout(self, order_id: int, token: str) -> tuple[Order, Product]:
        """The buyer left Stripe's page through its cancel link: expire the Checkout Session
        at Stripe, then close the order (its open-checkout slot and stock come back).

        `token` must be the order's own cancel token (NotFound otherwise, nothing changes).
        A session that was paid first stays paid; a second visit changes nothing.
        """
        async with self.store.reading() as tx:
            order = await tx.orders.get(order_id)
            product = await tx.products.get(order.product_id) if order else None
        if (
            order is None
            or product is None
            or not order.cancel_token
            or not hmac.compare_digest(order.cancel_token.encode(), token.encode())
        ):
            raise NotFound(N_("We could not find that checkout."))
        if order.status != OrderStatus.PENDING:
            return order, product
        status = "expired"
        if order.stripe_session_id:
            status = await self.payments.expire_checkout(order.stripe_session_id)
        if status == "expired":
            async with self.store.transaction() as tx:
                await close_unpaid(tx, order, OrderStatus.EXPIRED, "canceled at checkout")
        async with self.store.reading() as tx:
            order = await tx.orders.get(order_id) or order
        return order, product

    async def customer_of(self, user_id: int) -> str:
        """The buyer's one Stripe customer, created at their first checkout and kept."""
        async with self.store.reading() as tx:
            known = await tx.customers.of_user(user_id)
        if known is not None:
            return known
        created = await self.payments.create_customer(self.store.install_id, user_id)
        async with self.store.transaction() as tx:
            return await tx.customers.remember(user_id, created)

    async def _abandon(self, order: Order, reason: str) -> None:
        """The session was never created: fail the order and give its stock back."""
        try:
            async with self.store.transaction() as tx:
                await close_unpaid(tx, order, OrderStatus.FAILED, reason)
        except Exception:
            # The expiry loop closes it later (the order stays pending until then).
            log.exception("could not close order %s after its checkout failed", order.id)

    async def _refuse_if_busy(
        self, tx: Tx, guild_id: int, open_orders: list[Order], recipient: int, product: Product
    ) -> None:
        limit = self.settings.shop.max_open_checkouts
        if len(open_orders) >= limit:
            raise Conflict(
                N_(
                    "You already have {count} checkout links open. Finish or wait for them to "
                    "expire (links last {minutes} min)."
                ),
                count=len(open_orders),
                minutes=self.settings.shop.checkout_expiry_minutes,
            )
        if product.kind == Kind.SUBSCRIPTION:
            for entitlement in await tx.entitlements.active_of_member(guild_id, recipient):
                if entitlement.product_id == product.id:
                    when = entitlement.ends_at.strftime("%Y-%m-%d") if entitlement.ends_at else "-"
                    raise Conflict(
                        N_(
                            "That subscription to **{product}** is already active; it renews on "
                            "{when}. Use /manage to change it."
                        ),
                        product=product.name,
                        when=when,
                    )

    def describe_price(self, product: Product) -> str:
        return describe_price(product)


def _open_link(
    open_orders: list[Order], recipient: int, product: Product, now: datetime
) -> Order | None:
    """The buyer's open checkout of this product (for this recipient) that can still be paid
    for a while: /buy gives that link again instead of opening another."""
    usable_until = now + REUSE_LINK_MARGIN
    for order in open_orders:
        if (
            order.product_id == product.id
            and order.recipient_id == recipient
            and order.checkout_url
            and order.checkout_expires_at is not None
            and order.checkout_expires_at > usable_until
        ):
            return order
    return None
