"""Membership: what a member owns, /claim, and access coming back when a member (re)joins."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from bot.fulfilment import Fulfilment
from bot.i18n import N_, _
from bot.models import (
    NO_BUYER,
    ActionType,
    Entitlement,
    Job,
    JobStatus,
    Kind,
    Order,
    OrderStatus,
    Product,
    Subscription,
)
from bot.planning import NOTICE_KINDS, Planner
from bot.shop import CLAIM_ALPHABET, CLAIM_GROUPS, LEGACY_CLAIM_LENGTH, format_claim_code
from bot.store import Store, Tx

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 5  # wrong codes one user may give …
CLAIM_WINDOW = timedelta(minutes=15)  # … within this long, then they wait
#: The one answer for a code that is not ours to give: no such code, another guild's, or an
#: order someone else holds (different answers would tell a guesser which codes exist).
#: Every refusal of a wrong code below starts with it (in English).
UNKNOWN_CODE = "No order here has that claim code."


#: Stripe's longest Checkout link life: a pending order older than this without a stored
#: expiry is an abandoned checkout, whatever the expiry loop has done with it yet.
LONGEST_CHECKOUT = timedelta(hours=24)
#: Stripe statuses of a subscription whose latest payment failed (access lasts until ends_at).
UNPAID = frozenset({"past_due", "unpaid", "incomplete"})
DELIVERY_KINDS = frozenset(str(kind) for kind in ActionType)


@dataclass(frozen=True, slots=True)
class Holding:
    """One active access of the member, in its true state (what /purchases shows).

    delivery: `delivered` | `delivering` | `failed` | `nothing` (no delivery to make).
    access: `forever` | `renews` | `cancels` | `payment_failed` | `trial` | `expires`;
    `until` is the date that goes with it (None only for `forever`)."""

    name: str
    order_id: int | None
    delivery: str
    access: str
    until: datetime | None
    claim_code: str | None = None


@dataclass(frozen=True, slots=True)
class Purchases:
    """What /purchases shows: access in its true state, orders (abandoned checkouts left
    out) and what is still waiting to be delivered."""

    holdings: list[Holding]
    orders: list[tuple[Order, Product | None]]
    pending_jobs: list[Job]


def delivery_state(jobs: list[Job]) -> str:
    """From the entitlement's own delivery jobs: a failure outweighs work in progress."""
    statuses = {job.status for job in jobs if job.kind in DELIVERY_KINDS}
    if JobStatus.FAILED in statuses:
        return "failed"
    if statuses & {JobStatus.PENDING, JobStatus.RUNNING}:
        return "delivering"
    return "delivered" if JobStatus.COMPLETED in statuses else "nothing"


def access_state(
    entitlement: Entitlement, product: Product | None, sub: Subscription | None
) -> tuple[str, datetime | None]:
    """How the access goes on: a subscription by its Stripe state, else by its end date."""
    ends = entitlement.ends_at
    if product is not None and product.kind == Kind.SUBSCRIPTION and ends is not None:
        if sub is None:
            return "renews", ends
        period_end = sub.current_period_end or ends
        if sub.status in UNPAID:
            return "payment_failed", ends
        if sub.cancel_at_period_end:
            return "cancels", period_end
        if sub.status == "trialing":
            return "trial", period_end
        return "renews", period_end
    return ("expires", ends) if ends is not None else ("forever", None)


def is_stale_checkout(order: Order, now: datetime) -> bool:
    """A pending order whose checkout link can no longer be paid."""
    if order.status != OrderStatus.PENDING:
        return False
    if order.checkout_expires_at is not None:
        return order.checkout_expires_at <= now
    return order.created_at + LONGEST_CHECKOUT <= now


def normalize_code(text: str) -> str:
    """`abcd efgh jkmn pqrs`, `ABCD-EFGH-JKMN-PQRS` → `ABCD-EFGH-JKMN-PQRS` (codes of the
    older 8-symbol form too); raises InvalidInput for anything else."""
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    lengths = (CLAIM_GROUPS * 4, LEGACY_CLAIM_LENGTH)
    if len(raw) not in lengths or any(ch not in CLAIM_ALPHABET for ch in raw):
        raise InvalidInput(N_("That is not a claim code; codes look like `ABCD-EFGH-JKLM-NPQR`."))
    return format_claim_code(raw)


class MemberService:
    """Member-facing reads and the join/claim paths; imports nothing from discord."""

    def __init__(self, store: Store, fulfilment: Fulfilment, planner: Planner) -> None:
        self.store = store
        self.fulfilment = fulfilment
        self.planner = planner

    async def purchases(self, guild_id: int, user_id: int) -> Purchases:
        async with self.store.reading() as tx:
            now = tx.now
            orders = [
                o
                for o in await tx.orders.of_member(guild_id, user_id)
                if not is_stale_checkout(o, now)
            ]
            entitlements = await tx.entitlements.active_of_member(guild_id, user_id)
            jobs = await tx.jobs.of_member(
                guild_id,
                user_id,
                (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.COMPLETED),
            )
            products = {}
            for product_id in {o.product_id for o in orders} | {e.product_id for e in entitlements}:
                products[product_id] = await tx.products.get(product_id)
            holdings = []
            for entitlement in entitlements:
                order = await tx.orders.get(entitlement.order_id) if entitlement.order_id else None
                sub_id = order.stripe_subscription_id if order else None
                sub = await tx.subscriptions.get(sub_id) if sub_id else None
                product = products.get(entitlement.product_id)
                access, until = access_state(entitlement, product, sub)
                own = [j for j in jobs if j.entitlement_id == entitlement.id]
                holdings.append(
                    Holding(
                        name=product.name if product else f"product {entitlement.product_id}",
                        order_id=entitlement.order_id,
                        delivery=delivery_state(own),
                        access=access,
                        until=until,
                        claim_code=order.claim_code if order else None,
                    )
                )
        waiting = (JobStatus.PENDING, JobStatus.RUNNING)
        return Purchases(
            holdings=holdings,
            orders=[(o, products.get(o.product_id)) for o in orders],
            pending_jobs=[j for j in jobs if j.status in waiting and j.kind not in NOTICE_KINDS],
        )

    async def claim(self, guild_id: int, user_id: int, code: str | None) -> str:
        """With a code: attach that paid order to the caller. Without: deliver pending now."""
        if code is None:
            async with self.store.transaction() as tx:
                woken = await tx.jobs.wake_member(guild_id, user_id)
                regranted = await self.planner.regrants(tx, guild_id, user_id)
            if woken or regranted:
                return _(
                    "Delivering everything pending for you now; check `/purchases` in a moment."
                )
            return _("Nothing is waiting for you. `/purchases` lists what you own.")
        async with self.store.transaction() as tx:
            await self._refuse_if_locked(tx, user_id)
            normalized = normalize_code(code)
            order = await tx.orders.by_claim_code(normalized)
            if (
                order is None
                or order.guild_id != guild_id
                or order.recipient_id not in (None, user_id)
            ):
                left = await self._wrong_code(tx, guild_id, user_id)
            else:
                return await self._attach(tx, order, user_id)
        # Committed: the wrong code counts, and nothing else was changed.
        minutes = int(CLAIM_WINDOW.total_seconds() // 60)
        if left:
            if left == 1:
                raise NotFound(
                    N_(
                        "No order here has that claim code. Check it against your receipt "
                        "(1 more try before a {minutes}-minute pause)."
                    ),
                    minutes=minutes,
                )
            raise NotFound(
                N_(
                    "No order here has that claim code. Check it against your receipt "
                    "({left} more tries before a {minutes}-minute pause)."
                ),
                left=left,
                minutes=minutes,
            )
        raise TooManyAttempts(
            N_(
                "No order here has that claim code. Too many wrong codes; try again in {minutes} "
                "minutes."
            ),
            minutes=minutes,
        )

    async def _refuse_if_locked(self, tx: Tx, user_id: int) -> None:
        """Too many wrong codes lately: refuse before looking at the code (nothing changes)."""
        wrong = await tx.claims.wrong_since(user_id, tx.now - CLAIM_WINDOW)
        if len(wrong) < CLAIM_ATTEMPTS:
            return
        # Open again once fewer than CLAIM_ATTEMPTS wrong codes are inside the window.
        reopens = wrong[-CLAIM_ATTEMPTS] + CLAIM_WINDOW
        minutes = max(1, math.ceil((reopens - tx.now).total_seconds() / 60))
        raise TooManyAttempts(
            N_("Too many wrong claim codes; try again in 1 minute.")
            if minutes == 1
            else N_("Too many wrong claim codes; try again in {minutes} minutes."),
            minutes=minutes,
        )

    async def _wrong_code(self, tx: Tx, guild_id: int, user_id: int) -> int:
        """Count one wrong code; return how many more the user may give in the window."""
        await tx.claims.record_wrong(guild_id, user_id, forget_before=tx.now - CLAIM_WINDOW)
        await tx.audit.add("order.claim_refused", guild_id=guild_id, user_id=user_id)
        wrong = await tx.claims.wrong_since(user_id, tx.now - CLAIM_WINDOW)
        return max(0, CLAIM_ATTEMPTS - len(wrong))

    async def _attach(self, tx: Tx, order: Order, user_id: int) -> str:
        """The code is the caller's to use: their own order, or an unclaimed one."""
        guild_id = order.guild_id
        if order.status != OrderStatus.PAID:
            raise Conflict(
                N_("That order is {status}, so there is nothing to claim."), status=order.status
            )
        if order.recipient_id == user_id:
            await tx.jobs.wake_member(guild_id, user_id)
            return _("That order is already yours; anything pending is being delivered now.")
        # A web order bought without a Discord login has no buyer either: whoever holds its
        # code paid for it, so they get the receipt too.
        buyer = user_id if order.buyer_id == NO_BUYER else order.buyer_id
        if not await tx.orders.claim(order.id, user_id):
            raise Conflict(N_("That code has already been claimed by someone else."))
        order = order.replace(recipient_id=user_id, buyer_id=buyer)
        await tx.audit.add("order.claim", guild_id=guild_id, user_id=user_id, order_id=order.id)
        await self.fulfilment.grant(tx, order, user_id)
        return _("Order #{order} is now yours; delivering it now.", order=order.id)

    async def member_joined(self, guild_id: int, user_id: int, pending: bool) -> int:
        """A member (re)joined. Screening first; then wake their jobs and re-grant their roles."""
        async with self.store.transaction() as tx:
            if pending:
                await tx.roles.start_screening(guild_id, user_id)
                return 0
            await tx.roles.end_screening(guild_id, user_id)
            return await self._welcome(tx, guild_id, user_id)

    async def member_screened(self, guild_id: int, user_id: int) -> int:
        """GUILD_MEMBER_UPDATE with pending false: finish what the join started, once."""
        async with self.store.reading() as tx:
            waiting = await tx.roles.in_screening(guild_id, user_id)
        if not waiting:  # the common case: a role change, not the end of screening
            return 0
        async with self.store.transaction() as tx:
            if not await tx.roles.end_screening(guild_id, user_id):
                return 0
            return await self._welcome(tx, guild_id, user_id)

    async def _welcome(self, tx: Tx, guild_id: int, user_id: int) -> int:
        woken = await tx.jobs.wake_member(guild_id, user_id)
        regranted = await self.planner.regrants(tx, guild_id, user_id)
        if woken or regranted:
            await tx.audit.add(
                "member.join",
                guild_id=guild_id,
                user_id=user_id,
                woken_jobs=woken,
                regranted=regranted,
            )
        return woken + regranted
