"""Membership: what a member owns, /claim, and access coming back when a member (re)joins."""

from __future__ import annotations

import logging

from bot.errors import Conflict, InvalidInput, NotFound
from bot.fulfilment import Fulfilment
from bot.models import JobStatus, OrderStatus
from bot.planning import NOTICE_KINDS, Planner
from bot.shop import CLAIM_ALPHABET, Purchases
from bot.store import Store, Tx

log = logging.getLogger(__name__)


def normalize_code(text: str) -> str:
    """`abcd efgh`, `ABCD-EFGH` → `ABCD-EFGH`; raises InvalidInput for anything else."""
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(raw) != 8 or any(ch not in CLAIM_ALPHABET for ch in raw):
        raise InvalidInput("That is not a claim code; codes look like `ABCD-EF23`.")
    return f"{raw[:4]}-{raw[4:]}"


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
        normalized = normalize_code(code)
        async with self.store.transaction() as tx:
            order = await tx.orders.by_claim_code(normalized)
            if order is None or order.guild_id != guild_id:
                raise NotFound("No order here has that claim code.")
            if order.status != OrderStatus.PAID:
                raise Conflict(f"That order is {order.status}, so there is nothing to claim.")
            if order.recipient_id is not None and order.recipient_id != user_id:
                raise Conflict("That code has already been claimed by someone else.")
            if order.recipient_id == user_id:
                await tx.jobs.wake_member(guild_id, user_id)
                return "That order is already yours; anything pending is being delivered now."
            if not await tx.orders.update(order.id, recipient_id=user_id):
                raise Conflict("That code has already been claimed by someone else.")
            order = order.replace(recipient_id=user_id)
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
