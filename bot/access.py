"""Ending, extending and restoring entitlements: stage jobs, role revocations and DM notices.

Role revocation (SPEC §3): ending an entitlement queues one `revoke_role` job per role its
product grants (when the stage is in the action's `revoke_on`), unless another active
entitlement of the same member grants that role too. The job itself re-checks that and
removes the role only if the role grant ledger says the bot gave it (bot/delivery.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.messages import access_ended_text
from bot.models import (
    ActionType,
    Entitlement,
    EntitlementStatus,
    Order,
    Stage,
)
from bot.store import Tx

if TYPE_CHECKING:
    from bot.fulfilment import Fulfilment

#: Payload stages of jobs that deliver access (on purchase, on rejoin); ending access cancels them.
PURCHASE_STAGES = (Stage.ON_PURCHASE.value, "rejoin")


@dataclass(frozen=True, slots=True)
class Ending:
    """One way access ends. A higher `rank` overrides a lower one, never the reverse."""

    status: str
    reason: str
    stage: str
    rank: int
    notify: bool  # DM the member that their access ended
    cancel_kinds: tuple[str, ...] | None  # pending purchase jobs to cancel (None = all)


EXPIRED = Ending(EntitlementStatus.EXPIRED, "expired", Stage.ON_EXPIRE, 1, True, ("grant_role",))
LAPSED = Ending(EntitlementStatus.EXPIRED, "lapsed", Stage.ON_EXPIRE, 1, True, ("grant_role",))
CANCELED = Ending(EntitlementStatus.EXPIRED, "canceled", Stage.ON_EXPIRE, 2, True, ("grant_role",))
REFUND = Ending(EntitlementStatus.REVOKED, "refund", Stage.ON_REFUND, 3, False, None)
CHARGEBACK = Ending(EntitlementStatus.REVOKED, "chargeback", Stage.ON_CHARGEBACK, 4, False, None)
_RANKS = {ending.reason: ending.rank for ending in (EXPIRED, LAPSED, CANCELED, REFUND, CHARGEBACK)}


def rank(entitlement: Entitlement) -> int:
    """0 for active; else how final its end is (unknown revocations, e.g. by hand, are final)."""
    if entitlement.status == EntitlementStatus.ACTIVE:
        return 0
    fallback = 9 if entitlement.status == EntitlementStatus.REVOKED else 1
    return _RANKS.get(entitlement.end_reason or "", fallback)


class Access:
    """Changes to one entitlement inside the caller's transaction; every effect is deduped."""

    def __init__(self, settings: Settings, fulfilment: Fulfilment) -> None:
        self.settings = settings
        self.fulfilment = fulfilment

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.settings.shop.subscription_grace_hours)

    async def end(
        self, tx: Tx, order: Order | None, entitlement: Entitlement, ending: Ending
    ) -> bool:
        """Apply `ending` (if stronger than the current end) and its once-only effects.

        The stage's jobs, revocations and notice are queued even when a stronger end got
        there first, so the result does not depend on which arrived first. Returns whether
        the entitlement changed.
        """
        current = await tx.entitlements.get(entitlement.id)
        assert current is not None
        changed = False
        if rank(current) < ending.rank:
            changed = await tx.entitlements.set_end(
                current.id,
                ending.status,
                ending.reason,
                expected=(current.status, current.end_reason),
            )
            current = await tx.entitlements.get(current.id)
            assert current is not None
        if current.status == EntitlementStatus.ACTIVE:
            return False
        await tx.jobs.cancel_pending_of_entitlement(
            current.id,
            stages=PURCHASE_STAGES,
            kinds=ending.cancel_kinds,
            reason=f"access ended ({current.end_reason}) before this was delivered",
        )
        product = await tx.products.get(current.product_id)
        assert product is not None
        await self.fulfilment.queue_stage(
            tx, order, product, current.user_id, current.id, ending.stage, cycle=current.cycle
        )
        await self._queue_revokes(tx, current, ending.stage)
        if ending.notify:
            await self.notify(
                tx,
                current,
                key=f"notice:entitlement:{current.id}:c{current.cycle}:ended",
                text=access_ended_text(product.name, ending.reason),
            )
        if changed:
            await tx.audit.add(
                "entitlement.end",
                guild_id=current.guild_id,
                user_id=current.user_id,
                order_id=current.order_id,
                entitlement_id=current.id,
                status=current.status,
                reason=current.end_reason,
            )
        return changed

    async def extend(
        self,
        tx: Tx,
        entitlement: Entitlement,
        paid_through: datetime,
        *,
        restorable: bool,
    ) -> None:
        """Move `ends_at` forward to `paid_through`; restore access that had only lapsed.

        Only a subscription that lapsed (grace ran out while Stripe retried) comes back, and
        only when `restorable` (its order is still paid and the subscription has not ended).
        """
        await tx.entitlements.extend_to(entitlement.id, paid_through)
        current = await tx.entitlements.get(entitlement.id)
        assert current is not None
        if not restorable or current.end_reason != LAPSED.reason:
            return
        if paid_through + self.grace <= tx.now or not await tx.entitlements.restore_lapsed(
            current.id
        ):
            return
        restored = await tx.entitlements.get(current.id)
        assert restored is not None
        expires = tx.now + timedelta(hours=self.settings.shop.claim_expiry_hours)
        for action in await tx.products.actions(restored.product_id, Stage.ON_PURCHASE):
            if action.type != ActionType.GRANT_ROLE:
                continue
            await tx.jobs.enqueue(
                guild_id=restored.guild_id,
                user_id=restored.user_id,
                kind=ActionType.GRANT_ROLE,
                order_id=restored.order_id,
                entitlement_id=restored.id,
                action_id=action.id,
                dedupe_key=f"entitlement:{restored.id}:c{restored.cycle}:grant:action:{action.id}",
                payload={"role_id": action.role_id, "stage": Stage.ON_PURCHASE.value},
                expires_at=expires,
            )
        await tx.audit.add(
            "entitlement.restore",
            guild_id=restored.guild_id,
            user_id=restored.user_id,
            order_id=restored.order_id,
            entitlement_id=restored.id,
            ends_at=restored.ends_at,
        )

    async def notify(self, tx: Tx, entitlement: Entitlement, *, key: str, text: str) -> None:
        """Queue a DM notice to the entitlement's member, once per `key`."""
        await self.notify_user(
            tx, entitlement.guild_id, entitlement.user_id, entitlement.order_id, key=key, text=text
        )

    async def notify_user(
        self, tx: Tx, guild_id: int, user_id: int, order_id: int | None, *, key: str, text: str
    ) -> None:
        """Queue a DM notice (job kind `notice`), once per `key`."""
        await tx.jobs.enqueue(
            guild_id=guild_id,
            user_id=user_id,
            kind="notice",
            order_id=order_id,
            dedupe_key=key,
            payload={"text": text},
            expires_at=tx.now + timedelta(hours=self.settings.shop.claim_expiry_hours),
        )

    async def _queue_revokes(self, tx: Tx, entitlement: Entitlement, stage: str) -> None:
        """One revoke_role job per role of the product that this stage takes back."""
        for action in await tx.products.grant_role_actions(entitlement.product_id):
            role_id = action.role_id
            if action.stage != Stage.ON_PURCHASE or role_id is None:
                continue
            if stage not in action.revoke_stages:
                continue
            holders = await tx.entitlements.active_holders_of_role(
                entitlement.guild_id, entitlement.user_id, role_id
            )
            if holders:
                continue  # still paid for through another product: keep it
            await tx.jobs.enqueue(
                guild_id=entitlement.guild_id,
                user_id=entitlement.user_id,
                kind="revoke_role",
                order_id=entitlement.order_id,
                entitlement_id=entitlement.id,
                action_id=action.id,
                dedupe_key=f"revoke:entitlement:{entitlement.id}:c{entitlement.cycle}:role:{role_id}",
                payload={"role_id": role_id},
            )
