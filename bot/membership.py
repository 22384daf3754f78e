"""Membership: what a member owns, /claim, and access coming back when a member (re)joins."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from bot.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from bot.fulfilment import Fulfilment
from bot.models import NO_BUYER, JobStatus, Order, OrderStatus
from bot.planning import NOTICE_KINDS, Planner
from bot.shop import (
    CLAIM_ALPHABET,
    CLAIM_GROUPS,
    LEGACY_CLAIM_LENGTH,
    Purchases,
    format_claim_code,
)
from bot.store import Store, Tx

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 5  # wrong codes one user may give …
CLAIM_WINDOW = timedelta(minutes=15)  # … within this long, then they wait
#: The one answer for a code that is not ours to give: no such code, another guild's, or an
#: order someone else holds (different answers would tell a guesser which codes exist).
UNKNOWN_CODE = "No order here has that claim code."


def normalize_code(text: str) -> str:
    """`abcd efgh jkmn pqrs`, `ABCD-EFGH-JKMN-PQRS` → `ABCD-EFGH-JKMN-PQRS` (codes of the
    older 8-symbol form too); raises InvalidInput for anything else."""
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    lengths = (CLAIM_GROUPS * 4, LEGACY_CLAIM_LENGTH)
    if len(raw) not in lengths or any(ch not in CLAIM_ALPHABET for ch in raw):
        raise InvalidInput("That is not a claim code; codes look like `ABCD-EFGH-JKLM-NPQR`.")
    return format_claim_code(raw)


class MemberService:
    """Member-facing reads and the join/claim paths; imports nothing from discord."""

    def __init__(self, store: Store, fulfilment: Fulfilment, planner: Planner) -> None:
        self.store = store
        self.fulfilment = fulfilment
        self.planner = planner

    async def purchases(self, guild_id: int, user_id: int) -> Purchases:
        async with self.store.reading() as tx:
            orders = await tx.orders.of_member(guild_id, user_id)
            entitlements = await tx.entitlements.active_of_member(guild_id, user_id)
            jobs = await tx.jobs.of_member(
                guild_id, user_id, (JobStatus.PENDING, JobStatus.RUNNING)
            )
            products = {}
            for product_id in {o.product_id for o in orders} | {e.product_id for e in entitlements}:
                products[product_id] = await tx.products.get(product_id)
        return Purchases(
            orders=[(o, products.get(o.product_id)) for o in orders],
            entitlements=[(e, products.get(e.product_id)) for e in entitlements],
            pending_jobs=[j for j in jobs if j.kind not in NOTICE_KINDS],
        )

    async def claim(self, guild_id: int, user_id: int, code: str | None) -> str:
        """With a code: attach that paid order to the caller. Without: deliver pending now."""
        if code is None:
            async with self.store.transaction() as tx:
                woken = await tx.jobs.wake_member(guild_id, user_id)
                regranted = await self.planner.regrants(tx, guild_id, user_id)
            if woken or regranted:
                return "Delivering everything pending for you now; check `/purchases` in a moment."
            return "Nothing is waiting for you. `/purchases` lists what you own."
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
            raise NotFound(
                f"{UNKNOWN_CODE} Check it against your receipt "
                f"({left} more {'try' if left == 1 else 'tries'} before a {minutes}-minute pause)."
            )
        raise TooManyAttempts(
            f"{UNKNOWN_CODE} Too many wrong codes; try again in {minutes} minutes."
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
            f"Too many wrong claim codes; try again in {minutes} "
            f"{'minute' if minutes == 1 else 'minutes'}."
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
            raise Conflict(f"That order is {order.status}, so there is nothing to claim.")
        if order.recipient_id == user_id:
            await tx.jobs.wake_member(guild_id, user_id)
            return "That order is already yours; anything pending is being delivered now."
        # A web order bought without a Discord login has no buyer either: whoever holds its
        # code paid for it, so they get the receipt too.
        buyer = user_id if order.buyer_id == NO_BUYER else order.buyer_id
        if not await tx.orders.claim(order.id, user_id):
            raise Conflict("That code has already been claimed by someone else.")
        order = order.replace(recipient_id=user_id, buyer_id=buyer)
        await tx.audit.add("order.claim", guild_id=guild_id, user_id=user_id, order_id=order.id)
        await self.fulfilment.grant(tx, order, user_id)
        return f"Order #{order.id} is now yours; delivering it now."

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
