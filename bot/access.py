"""Access: the "access ended" entry point, plus extending and restoring entitlements.

Ending an entitlement runs its stage's actions, takes back the roles that stage revokes
(SPEC §3, the ledger rule in `Planner.revocations`) and tells the member; every effect is
planned by bot/planning.py and happens once, whichever end arrived first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings
from bot.i18n import N_, _
from bot.messages import access_ended_text
from bot.models import Entitlement, EntitlementStatus, Order, Product, Stage
from bot.planning import Keys, Planner, entitlement_data, in_guild_locale
from bot.store import Tx


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
CHARGEBACK = Ending(EntitlementStatus.REVOKED, "chargeback", Stage.ON_CHARGEBACK, 4, True, None)
#: Ends the admin log reports here (refunds and disputes are reported with the order).
LOGGED_ENDS = {
    "canceled": N_("subscription canceled"),
    "lapsed": N_("renewal not paid"),
    "manual": N_("revoked by an admin"),
}
_RANKS = {ending.reason: ending.rank for ending in (EXPIRED, LAPSED, CANCELED, REFUND, CHARGEBACK)}


def ended_log_text(entitlement: Entitlement, product: Product, reason: str) -> str:
    """The admin log line of an access that ended (LOGGED_ENDS), in the current locale."""
    params = {
        "reason": _(LOGGED_ENDS[reason]),
        "product": product.name,
        "member": entitlement.user_id,
    }
    if entitlement.order_id:
        return _(
            "⏹️ Access ended ({reason}): **{product}** of <@{member}> · order #{order}",
            order=entitlement.order_id,
            **params,
        )
    return _("⏹️ Access ended ({reason}): **{product}** of <@{member}> · given by hand", **params)


def rank(entitlement: Entitlement) -> int:
    """0 for active; else how final its end is (unknown revocations, e.g. by hand, are final)."""
    if entitlement.status == EntitlementStatus.ACTIVE:
        return 0
    fallback = 9 if entitlement.status == EntitlementStatus.REVOKED else 1
    return _RANKS.get(entitlement.end_reason or "", fallback)


class Access:
    """Changes to one entitlement inside the caller's transaction; every effect is deduped."""

    def __init__(self, settings: Settings, planner: Planner) -> None:
        self.settings = settings
        self.planner = planner

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.settings.shop.subscription_grace_hours)

    async def end(
        self,
        tx: Tx,
        order: Order | None,
        entitlement: Entitlement,
        ending: Ending,
        *,
        event_id: str | None = None,
    ) -> bool:
        """Apply `ending` (if stronger than the current end) and its once-only effects;
        `event_id` is the Stripe event behind it (kept in the audit row for `/shop why`).

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
        planner = self.planner
        await planner.cancel_deliveries(
            tx,
            current,
            ending.cancel_kinds,
            f"access ended ({current.end_reason}) before this was delivered",
        )
        product = await tx.products.get(current.product_id)
        assert product is not None
        await planner.stage(
            tx, order, product, current.user_id, current.id, ending.stage, cycle=current.cycle
        )
        await planner.revocations(tx, current, ending.stage)
        if changed and ending.notify:  # the end that applied, with its true reason
            await self.notify(
                tx,
                current,
                key=Keys.notice(
                    f"entitlement:{current.id}", f"ended:{ending.reason}", current.cycle
                ),
                text=await in_guild_locale(
                    tx, current.guild_id, access_ended_text, product.name, ending.reason
                ),
            )
        if changed and ending.reason in LOGGED_ENDS:
            await planner.log(
                tx,
                current.guild_id,
                "access_ended",
                await in_guild_locale(
                    tx, current.guild_id, ended_log_text, current, product, ending.reason
                ),
                key=f"entitlement:{current.id}:log:ended:{ending.reason}:c{current.cycle}",
            )
        if changed:
            await planner.webhook(
                tx,
                "access.ended",
                f"entitlement:{current.id}:ended:{current.end_reason}:c{current.cycle}",
                entitlement_data(current),
            )
            await tx.audit.add(
                "entitlement.end",
                guild_id=current.guild_id,
                user_id=current.user_id,
                order_id=current.order_id,
                entitlement_id=current.id,
                status=current.status,
                reason=current.end_reason,
                event_id=event_id,
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
        await self.planner.restore(tx, restored)
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
        await self.planner.notice(
            tx, entitlement.guild_id, entitlement.user_id, entitlement.order_id, key=key, text=text
        )
