"""Planner: the one place that decides which delivery jobs must exist, and names them.

Every job is queued here (stage actions, receipts, notices, role revocations under the
ledger rule, restores after a lapse, rejoin re-grants, reconciliation fixes, admin grants),
so "what will the bot do for this order?" has one answer. Two keys keep effects single,
both enforced by unique indexes on `delivery_jobs` (a second insert is a no-op):

- `dedupe_key` — an effect that happens at most once, ever:
      key     = subject ":" effect [":c" cycle]         (cycle only when > 0)
      subject = "order:" id | "entitlement:" id | "invoice:" stripe_id
              | "subscription:" stripe_id               (a failed-renewal DM, once a day)
              | "discord_entitlement:" id               (a Discord entitlement, bot/skus.py)
      effect  = stage ":action:" action_id              a product action of a stage
              | "join"                                  adding a web buyer to the server
              | "receipt"                               the buyer's DM receipt
              | "gift"                                  the recipient's DM: a gift arrived
              | "revoke:role:" role_id                  taking a role back
              | "restore:action:" action_id             re-granting after a lapse
              | "notice:" topic                         a DM notice (ended, granted, …)
              | "reminder:" kind ":" days ":" ends_at   a reminder before an end date
              | "consume"                               using up a consumable SKU's
                                                        entitlement, after its delivery
  A stage's jobs are owned by the order (or, for access given by hand, the entitlement).
  `cycle` counts restores after a lapse, so a new access period gets fresh keys.
- `open_key` — at most one such job pending or running at a time (repairs may repeat):
      "entitlement:" id ":role:" role_id ":grant" | ":revoke"
      "member:" guild_id ":" user_id ":role:" role_id ":revoke"   (reconcile, no entitlement)
      "panel:" panel_id ":edit"    re-render a shop panel message (`edit_panel`, no member:
                                   user_id 0); the job renders what is current when it runs,
                                   so changes made while one is pending collapse into it
      "log_flush:" guild_id           posts the guild's unsent admin log notices (bot/notices.py)
- outbound webhooks (bot/webhooks_out.py), `dedupe_key`, one job per fact × endpoint (guild 0,
  user 0: an endpoint belongs to the install, not a guild):
      "webhook:" fact ":" event_type ":endpoint:" endpoint_id
      fact = "order:" id ":paid" | "entitlement:" id ":ended:" reason ":c" cycle | …

Callers pass the facts; the planner never commits: it writes into the caller's transaction,
and the store wakes the worker when that transaction commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.i18n import _, use_locale
from bot.models import (
    ActionType,
    Entitlement,
    Job,
    JobStatus,
    Order,
    OrderSource,
    Product,
    Stage,
)
from bot.store import Tx
from bot.store.roles import WantedRole
from bot.store.webhooks import Endpoint

#: Payload stages of jobs that deliver access (on purchase, on rejoin); ending access cancels them.
PURCHASE_STAGES = (Stage.ON_PURCHASE.value, "rejoin", "reconcile", "restore")
#: Job kinds that tell people about an order once its delivery has run (not deliveries).
NOTICE_KINDS = ("receipt", "gift")
#: The `user_id` of jobs that concern no member (shop panel edits).
PANEL_USER = 0

#: Admin log notices within this window are posted together (SPEC §4: bursts summarised).
LOG_WINDOW = timedelta(seconds=15)


LOG_FLUSH = "log_flush"
#: Job kind: consume a Discord entitlement (bot/skus.py); SKU type 3 is a consumable.
CONSUME = "consume_entitlement"
CONSUMABLE_SKU = 3
#: Job kind of an outbound webhook delivery (bot/webhooks_out.py).
WEBHOOK = "webhook"
#: The lane (guild id) and user id of webhook jobs.
WEBHOOK_LANE = 0


def failed_delivery_text(job: Job, error: str) -> str:
    """The admin log line of a delivery that failed for good: what, for whom, the fix."""
    params = {"job": job.id, "what": job.kind.replace("_", " "), "member": job.user_id}
    if job.order_id:
        return _(
            "❌ Delivery failed: job #{job} {what} for <@{member}> (order #{order}): {error}. "
            "Fix it, then press Retry (or `/shop retry {job}`).",
            order=job.order_id,
            error=error,
            **params,
        )
    return _(
        "❌ Delivery failed: job #{job} {what} for <@{member}>: {error}. Fix it, then press "
        "Retry (or `/shop retry {job}`).",
        error=error,
        **params,
    )


def order_data(order: Order, status: str | None = None) -> dict[str, Any]:
    """An order as outbound webhooks show it (`data` of order.* events)."""
    return {
        "order_id": order.id,
        "guild_id": order.guild_id,
        "product_id": order.product_id,
        "buyer_id": order.buyer_id,
        "user_id": order.recipient_id,
        "amount": order.amount,
        "currency": order.currency,
        "status": status or order.status,
    }


def entitlement_data(entitlement: Entitlement) -> dict[str, Any]:
    """An entitlement as outbound webhooks show it (`data` of access.* events)."""
    return {
        "entitlement_id": entitlement.id,
        "guild_id": entitlement.guild_id,
        "user_id": entitlement.user_id,
        "product_id": entitlement.product_id,
        "order_id": entitlement.order_id,
        "status": entitlement.status,
        "reason": entitlement.end_reason,
        "ends_at": entitlement.ends_at.isoformat() if entitlement.ends_at else None,
    }


def _cycle(cycle: int) -> str:
    return f":c{cycle}" if cycle else ""


@dataclass(frozen=True, slots=True)
class Keys:
    """The key grammar above, as functions (the only code that spells a key)."""

    @staticmethod
    def stage_action(owner: str, stage: str, action_id: int, cycle: int = 0) -> str:
        return f"{owner}:{stage}:action:{action_id}{_cycle(cycle)}"

    @staticmethod
    def join(order_id: int) -> str:
        return f"order:{order_id}:join"

    @staticmethod
    def receipt(order_id: int) -> str:
        return f"order:{order_id}:receipt"

    @staticmethod
    def gift(order_id: int) -> str:
        return f"order:{order_id}:gift"

    @staticmethod
    def revoke(entitlement: Entitlement, role_id: int) -> str:
        return f"entitlement:{entitlement.id}:revoke:role:{role_id}{_cycle(entitlement.cycle)}"

    @staticmethod
    def restore(entitlement: Entitlement, action_id: int) -> str:
        return f"entitlement:{entitlement.id}:restore:action:{action_id}{_cycle(entitlement.cycle)}"

    @staticmethod
    def notice(subject: str, topic: str, cycle: int = 0) -> str:
        return f"{subject}:notice:{topic}{_cycle(cycle)}"

    @staticmethod
    def reminder(entitlement_id: int, kind: str, days: int, ends_at: datetime) -> str:
        return f"entitlement:{entitlement_id}:reminder:{kind}:{days}:{int(ends_at.timestamp())}"

    @staticmethod
    def consume(entitlement_id: int) -> str:
        return f"discord_entitlement:{entitlement_id}:consume"

    @staticmethod
    def log_flush(guild_id: int) -> str:
        return f"log_flush:{guild_id}"

    @staticmethod
    def webhook(fact: str, event_type: str, endpoint_id: int) -> str:
        return f"webhook:{fact}:{event_type}:endpoint:{endpoint_id}"

    @staticmethod
    def open_role(entitlement_id: int, role_id: int, kind: str) -> str:
        return f"entitlement:{entitlement_id}:role:{role_id}:{kind.removesuffix('_role')}"

    @staticmethod
    def open_panel(panel_id: int) -> str:
        return f"panel:{panel_id}:edit"

    @staticmethod
    def open_member_role(guild_id: int, user_id: int, role_id: int, kind: str) -> str:
        return f"member:{guild_id}:{user_id}:role:{role_id}:{kind.removesuffix('_role')}"


async def in_guild_locale(
    tx: Tx, guild_id: int, render: Callable[..., str], *args: Any, **kwargs: Any
) -> str:
    """`render(*args)` in the guild's language (`/shop settings locale`, else Discord's
    preferred locale): for texts stored now and sent later (DM notices, log lines)."""
    with use_locale(await tx.locales.of(guild_id)):
        return render(*args, **kwargs)


class Planner:
    """Queues jobs inside the caller's transaction; returns how many were new."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def _claim_deadline(self) -> timedelta:
        return timedelta(hours=self.settings.shop.claim_expiry_hours)

    async def stage(
        self,
        tx: Tx,
        order: Order | None,
        product: Product,
        user_id: int,
        entitlement_id: int | None,
        stage: str,
        cycle: int = 0,
    ) -> int:
        """One job per live action of `stage`; the receipt follows when they are done.

        Without an order (access given by hand) the jobs are keyed by the entitlement and
        no receipt follows.
        """
        owner = f"order:{order.id}" if order else f"entitlement:{entitlement_id}"
        actions = await tx.products.actions(product.id, stage)
        queued = 0
        if stage == Stage.ON_PURCHASE and order is not None:
            # First in the guild's lane, so the buyer is in the server before the roles.
            queued += await self._join(tx, order, product, user_id, entitlement_id, actions)
        for action in actions:
            open_key = None
            if action.type == ActionType.GRANT_ROLE and entitlement_id and action.role_id:
                open_key = Keys.open_role(entitlement_id, action.role_id, ActionType.GRANT_ROLE)
            queued += await self._enqueue(
                tx,
                guild_id=product.guild_id,
                user_id=user_id,
                kind=action.type,
                order_id=order.id if order else None,
                entitlement_id=entitlement_id,
                action_id=action.id,
                dedupe_key=Keys.stage_action(owner, stage, action.id, cycle),
                open_key=open_key,
                payload={
                    "role_id": action.role_id,
                    "channel_id": action.channel_id,
                    "message": action.message,
                    "stage": stage,
                },
                expires_at=tx.now + self._claim_deadline,
            )
        if stage == Stage.ON_PURCHASE and not actions and order is not None:
            await self.receipt(tx, order)  # nothing to deliver first (else: `after_job`)
        return queued

    async def _join(
        self,
        tx: Tx,
        order: Order,
        product: Product,
        user_id: int,
        entitlement_id: int | None,
        actions: list[Any],
    ) -> int:
        """A web buyer who logged in with Discord: add them to the server (PUT
        /guilds/{g}/members/{u} with their token and the product's roles), once."""
        join = await tx.join_tokens.get(order.id)
        if join is None or join.user_id != user_id:
            return 0
        roles = [a.role_id for a in actions if a.type == ActionType.GRANT_ROLE and a.role_id]
        return await self._enqueue(
            tx,
            guild_id=product.guild_id,
            user_id=user_id,
            kind="add_member",
            order_id=order.id,
            entitlement_id=entitlement_id,
            dedupe_key=Keys.join(order.id),
            payload={"roles": roles, "stage": Stage.ON_PURCHASE.value},
            expires_at=join.expires_at,
        )

    async def receipt(self, tx: Tx, order: Order) -> int:
        """The buyer's DM receipt, once per order whoever asks; for a gift (the order's
        recipient is not its buyer) the recipient's DM too, also once (SPEC §4: both are
        told). An order of a consumable Discord SKU is delivered now: its entitlement is
        consumed (SPEC §6b)."""
        queued = await self._consume_sku(tx, order)
        queued += await self._enqueue(
            tx,
            guild_id=order.guild_id,
            user_id=order.buyer_id,
            kind="receipt",
            order_id=order.id,
            dedupe_key=Keys.receipt(order.id),
        )
        if order.recipient_id is not None and order.recipient_id != order.buyer_id:
            queued += await self._enqueue(
                tx,
                guild_id=order.guild_id,
                user_id=order.recipient_id,
                kind="gift",
                order_id=order.id,
                dedupe_key=Keys.gift(order.id),
            )
        return queued

    async def _consume_sku(self, tx: Tx, order: Order) -> int:
        if order.source != OrderSource.SKU:
            return 0
        entitlement_id = await tx.skus.entitlement_of_order(order.id)
        link = await tx.skus.link_of_product(order.product_id)
        if entitlement_id is None or link is None or link.sku_type != CONSUMABLE_SKU:
            return 0
        return await self.consume_entitlement(tx, order.guild_id, order.buyer_id, entitlement_id)

    async def consume_entitlement(
        self, tx: Tx, guild_id: int, user_id: int, entitlement_id: int
    ) -> int:
        """`POST …/entitlements/{id}/consume`, once per entitlement, in the guild's lane.
        Queued in the transaction that recorded the delivery, so it runs only after that
        committed."""
        return await self._enqueue(
            tx,
            guild_id=guild_id,
            user_id=user_id,
            kind=CONSUME,
            dedupe_key=Keys.consume(entitlement_id),
            payload={"entitlement_id": str(entitlement_id)},
        )

    async def after_job(self, tx: Tx, job: Job, error: str | None = None) -> int:
        """A job ended: when it was an order's last open on_purchase job, queue the receipt.

        A delivery that failed for good is reported in the admin log (with a Retry button);
        a log flush that left notices behind (they came in while it ran) queues the next.
        """
        if job.kind == LOG_FLUSH:  # failed: the next notice (or /shop retry) tries again
            return 0 if error else await self.log_flush(tx, job.guild_id)
        if job.kind == WEBHOOK:  # its failures are in the endpoint's log, not the guild's
            return 0
        if error is not None and job.kind not in (*NOTICE_KINDS, "notice"):
            await self.webhook(
                tx,
                "delivery.failed",
                f"job:{job.id}:failed:{job.attempts}",
                {
                    "job_id": job.id,
                    "kind": job.kind,
                    "guild_id": job.guild_id,
                    "user_id": job.user_id,
                    "order_id": job.order_id,
                    "error": error,
                },
            )
            await self.log(
                tx,
                job.guild_id,
                "delivery_failed",
                await in_guild_locale(tx, job.guild_id, failed_delivery_text, job, error),
                key=f"job:{job.id}:log:failed:{job.attempts}",
                retry_job_id=job.id,
            )
        if job.order_id is None or job.payload.get("stage") != Stage.ON_PURCHASE:
            return 0
        statuses = (JobStatus.PENDING, JobStatus.RUNNING)
        open_jobs = await tx.jobs.of_member(job.guild_id, job.user_id, statuses)
        if any(
            other.order_id == job.order_id and other.kind not in NOTICE_KINDS for other in open_jobs
        ):
            return 0
        order = await tx.orders.get(job.order_id)
        return 0 if order is None else await self.receipt(tx, order)

    async def notice(
        self,
        tx: Tx,
        guild_id: int,
        user_id: int,
        order_id: int | None,
        *,
        key: str,
        text: str,
        buttons: list[tuple[str, str]] | None = None,
    ) -> int:
        """A DM notice (job kind `notice`), once per `key` (see `Keys.notice`); `buttons`
        are (label, custom_id) pairs shown under it."""
        payload: dict[str, Any] = {"text": text}
        if buttons:
            payload["buttons"] = [list(b) for b in buttons]
        return await self._enqueue(
            tx,
            guild_id=guild_id,
            user_id=user_id,
            kind="notice",
            order_id=order_id,
            dedupe_key=key,
            payload=payload,
            expires_at=tx.now + self._claim_deadline,
        )

    async def log(
        self,
        tx: Tx,
        guild_id: int,
        kind: str,
        text: str,
        *,
        key: str | None = None,
        retry_job_id: int | None = None,
        amount: tuple[int, str] | None = None,
    ) -> int:
        """An admin log notice (bot/notices.py), once per `key`, when the guild has a log
        channel; it is posted by the guild's `log_flush` job after `LOG_WINDOW`, together
        with every other notice of that window. `amount` (minor units, currency) is summed
        when a burst is summarised."""
        if await tx.notices.log_channel(guild_id) is None:
            return 0
        if not await tx.notices.add(
            guild_id, kind, text, key=key, retry_job_id=retry_job_id, amount=amount
        ):
            return 0
        return await self.log_flush(tx, guild_id)

    async def log_flush(self, tx: Tx, guild_id: int) -> int:
        """The guild's one `log_flush` job, due a window after its oldest unsent notice."""
        oldest = await tx.notices.oldest_unsent(guild_id)
        if oldest is None or await tx.notices.log_channel(guild_id) is None:
            return 0
        return await self._enqueue(
            tx,
            guild_id=guild_id,
            user_id=0,
            kind=LOG_FLUSH,
            open_key=Keys.log_flush(guild_id),
            due_at=max(oldest + LOG_WINDOW, tx.now),
        )

    async def cancel_deliveries(
        self, tx: Tx, entitlement: Entitlement, kinds: Any, why: str
    ) -> int:
        """Access ended: pending jobs that would still deliver it are canceled."""
        return await tx.jobs.cancel_pending_of_entitlement(
            entitlement.id, stages=PURCHASE_STAGES, kinds=kinds, reason=why
        )

    async def revocations(self, tx: Tx, entitlement: Entitlement, stage: str) -> int:
        """One revoke_role per role of the product that `stage` takes back (SPEC §3).

        A role still paid for through another active entitlement of the member is kept;
        the job itself re-checks that and the grant ledger before removing anything.
        """
        queued = 0
        for action in await tx.products.grant_role_actions(entitlement.product_id):
            role_id = action.role_id
            if action.stage != Stage.ON_PURCHASE or role_id is None:
                continue
            if stage not in action.revoke_stages:
                continue
            if await tx.entitlements.active_holders_of_role(
                entitlement.guild_id, entitlement.user_id, role_id
            ):
                continue
            queued += await self._enqueue(
                tx,
                guild_id=entitlement.guild_id,
                user_id=entitlement.user_id,
                kind="revoke_role",
                order_id=entitlement.order_id,
                entitlement_id=entitlement.id,
                action_id=action.id,
                dedupe_key=Keys.revoke(entitlement, role_id),
                open_key=Keys.open_role(entitlement.id, role_id, "revoke_role"),
                payload={"role_id": role_id},
            )
        return queued

    async def restore(self, tx: Tx, entitlement: Entitlement) -> int:
        """A lapsed subscription was paid after all: its roles again, once per cycle."""
        queued = 0
        for action in await tx.products.actions(entitlement.product_id, Stage.ON_PURCHASE):
            if action.type != ActionType.GRANT_ROLE or action.role_id is None:
                continue
            queued += await self._enqueue(
                tx,
                guild_id=entitlement.guild_id,
                user_id=entitlement.user_id,
                kind=ActionType.GRANT_ROLE,
                order_id=entitlement.order_id,
                entitlement_id=entitlement.id,
                action_id=action.id,
                dedupe_key=Keys.restore(entitlement, action.id),
                open_key=Keys.open_role(entitlement.id, action.role_id, ActionType.GRANT_ROLE),
                payload={"role_id": action.role_id, "stage": "restore"},
                expires_at=tx.now + self._claim_deadline,
            )
        return queued

    async def regrants(self, tx: Tx, guild_id: int, user_id: int) -> int:
        """The member is back: grant_role for every role of their active entitlements.

        Only active entitlements count, so access revoked by a refund, chargeback or ban
        is never given back; a grant already open for the same role is not repeated.
        """
        queued = 0
        for entitlement in await tx.entitlements.active_of_member(guild_id, user_id):
            for action in await tx.products.actions(entitlement.product_id, Stage.ON_PURCHASE):
                if action.type != ActionType.GRANT_ROLE or action.role_id is None:
                    continue
                queued += await self._enqueue(
                    tx,
                    guild_id=guild_id,
                    user_id=user_id,
                    kind=ActionType.GRANT_ROLE,
                    order_id=entitlement.order_id,
                    entitlement_id=entitlement.id,
                    action_id=action.id,
                    open_key=Keys.open_role(entitlement.id, action.role_id, "grant_role"),
                    payload={"role_id": action.role_id, "stage": "rejoin"},
                )
        return queued

    async def reconcile_grant(self, tx: Tx, guild_id: int, item: WantedRole) -> int:
        """Reconciliation found a wanted role missing."""
        return await self._enqueue(
            tx,
            guild_id=guild_id,
            user_id=item.user_id,
            kind=ActionType.GRANT_ROLE,
            order_id=item.order_id,
            entitlement_id=item.entitlement_id,
            action_id=item.action_id,
            open_key=Keys.open_role(item.entitlement_id, item.role_id, "grant_role"),
            payload={"role_id": item.role_id, "stage": "reconcile"},
        )

    async def reconcile_revoke(self, tx: Tx, guild_id: int, user_id: int, role_id: int) -> int:
        """Reconciliation found a role the bot gave whose access has ended."""
        return await self._enqueue(
            tx,
            guild_id=guild_id,
            user_id=user_id,
            kind="revoke_role",
            open_key=Keys.open_member_role(guild_id, user_id, role_id, "revoke_role"),
            payload={"role_id": role_id, "stage": "reconcile"},
        )

    async def refresh_panels(self, tx: Tx, product_id: int) -> int:
        """A product changed (price, text, stock, active, roles, removed): every shop panel
        showing it is edited in place. The panel's version is bumped first, so an edit already
        running with the old content is sent once more (bot/delivery.py `_edit_panel`)."""
        queued = 0
        for panel in await tx.panels.containing(product_id):
            await tx.panels.touch(panel.id)
            queued += await self._enqueue(
                tx,
                guild_id=panel.guild_id,
                user_id=PANEL_USER,
                kind="edit_panel",
                open_key=Keys.open_panel(panel.id),
                payload={"panel_id": panel.id},
            )
        return queued

    async def webhook(self, tx: Tx, event_type: str, fact: str, data: dict[str, Any]) -> int:
        """Outbound event `event_type` about `fact` to every enabled endpoint that asked for
        it: the body `{id, type, created, data}` is fixed now, so every retry sends the same
        event with the same id (bot/webhooks_out.py signs and POSTs it)."""
        endpoints = await tx.webhooks.subscribed(event_type)
        if not endpoints:
            return 0
        digest = hashlib.sha256(f"{tx.install_id}:{fact}:{event_type}".encode()).hexdigest()
        event = {
            "id": f"evt_{digest[:24]}",
            "type": event_type,
            "created": int(tx.now.timestamp()),
            "data": data,
        }
        queued = 0
        for endpoint in endpoints:
            queued += await self._enqueue(
                tx,
                guild_id=WEBHOOK_LANE,
                user_id=WEBHOOK_LANE,
                kind=WEBHOOK,
                dedupe_key=Keys.webhook(fact, event_type, endpoint.id),
                payload={"endpoint_id": endpoint.id, "event": event},
            )
        return queued

    async def webhook_disabled(self, tx: Tx, endpoint: Endpoint, error: str) -> None:
        """An endpoint failed for 3 days: disable it and tell every admin log channel."""
        if not await tx.webhooks.disable(endpoint.id, f"failing for 3 days: {error}"):
            return
        await tx.audit.add("webhook.disabled", endpoint_id=endpoint.id, url=endpoint.url)
        for guild_id in await tx.webhooks.log_guilds():
            await self.log(
                tx,
                guild_id,
                "webhook_disabled",
                await in_guild_locale(
                    tx,
                    guild_id,
                    lambda: _(
                        "🔌 Webhook endpoint #{endpoint} ({url}) was disabled: its deliveries "
                        "have failed for 3 days (last: {error}). Fix the receiver, then create "
                        "the endpoint again (`shopbot webhook create`).",
                        endpoint=endpoint.id,
                        url=endpoint.url,
                        error=error,
                    ),
                ),
                key=f"webhook:{endpoint.id}:log:disabled",
            )

    async def _enqueue(self, tx: Tx, **job: Any) -> int:
        return int(await tx.jobs.enqueue(**job) is not None)
