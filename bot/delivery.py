"""DeliveryWorker: claim due jobs → run the action on Discord → complete, retry or fail.

At-least-once with idempotent effects: a job is marked completed only after its effect
succeeded; a job found `running` at startup (the process died mid-job) runs again, which is
safe because role grants are idempotent PUTs. Jobs of one guild run in order, one at a
time; guilds run side by side so one guild's rate limit never slows another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from bot.clock import Clock
from bot.errors import MemberMissing, MessageGone, PermanentFailure, TransientFailure
from bot.i18n import use_locale
from bot.messages import gift_text, receipt_text
from bot.models import EntitlementStatus, Job, JobStatus, Order, Product
from bot.notices import flush_log
from bot.panels import panel_body
from bot.planning import CONSUME, LOG_FLUSH, WEBHOOK, Planner
from bot.sharding import Shards
from bot.store import Store
from bot.store.queue import LEASE
from bot.tasks import TaskGroup, wait_event
from bot.vault import SealedTokenInvalid, Vault
from bot.webhooks_out import WebhookSender

log = logging.getLogger(__name__)

EXPIRY_CHECK = timedelta(seconds=60)  # how often overdue (undeliverable) jobs are expired
#: How long the worker sleeps with nothing due. On SQLite every job is queued by this
#: process, whose commits wake it; on PostgreSQL other processes' jobs wake it by NOTIFY,
#: and this is the fallback while the LISTEN connection is down.
POLL = 30.0
SHARED_POLL = 5.0
PANEL_ROUNDS = 5  # a panel edit is sent again while its products keep changing meanwhile


class DiscordActions(Protocol):
    """What delivery needs from Discord (implemented in bot/discord_adapter.py)."""

    async def wait_ready(self) -> None: ...
    async def member_role_ids(self, guild_id: int, user_id: int) -> frozenset[int]: ...
    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None: ...
    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None: ...
    async def send_dm(
        self, user_id: int, content: str, buttons: Sequence[tuple[str, str]] = ()
    ) -> None: ...
    async def send_channel(
        self,
        channel_id: int,
        content: str,
        buttons: Sequence[tuple[str, str]] = (),
        *,
        mentions: bool = True,
    ) -> None: ...
    def guild_name(self, guild_id: int) -> str | None: ...
    async def kick(self, guild_id: int, user_id: int, reason: str) -> None: ...
    async def ban(self, guild_id: int, user_id: int, reason: str) -> None: ...
    async def create_invite(self, channel_id: int, reason: str) -> str: ...
    async def post_message(self, channel_id: int, body: dict[str, Any]) -> int: ...
    async def edit_message(
        self, channel_id: int, message_id: int, body: dict[str, Any]
    ) -> None: ...
    async def delete_message(self, channel_id: int, message_id: int) -> None: ...
    async def add_member(
        self, guild_id: int, user_id: int, access_token: str, role_ids: list[int], reason: str
    ) -> bool: ...
    async def consume_entitlement(self, entitlement_id: int) -> None: ...


class DeliveryWorker:
    """Runs the durable delivery queue."""

    def __init__(
        self,
        store: Store,
        discord: DiscordActions,
        clock: Clock,
        planner: Planner,
        *,
        vault: Vault | None = None,
        base_delay: float = 2.0,
        max_delay: float = 900.0,
        on_outcome: Callable[[str, str], None] | None = None,
        shards: Shards | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.store = store
        #: The guilds whose jobs this process runs (SPEC §9): those on its shards.
        self.shards = shards or Shards()
        #: Who holds the jobs this process claims (a dead process's are claimed again once
        #: their lease runs out); renewed every third of the lease while jobs run.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = lease
        self.discord = discord
        self.clock = clock
        self.planner = planner
        self.vault = vault
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._on_outcome = on_outcome or (lambda kind, outcome: None)
        self._wake = asyncio.Event()
        self._guild_tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._tasks = TaskGroup()
        self.webhooks = WebhookSender(store, clock, planner)
        self._handlers: dict[str, Callable[[Job], Awaitable[object]]] = {
            "grant_role": self._grant_role,
            "receipt": self._receipt,
            "gift": self._gift,
            "send_message": self._send_message,
            "kick": self._kick,
            "ban": self._ban,
            "create_invite": self._create_invite,
            "revoke_role": self._revoke_role,
            "deliver_license": self._deliver_license,
            "notice": self._notice,
            "edit_panel": self._edit_panel,
            "add_member": self._add_member,
            LOG_FLUSH: self._log_flush,
            CONSUME: self._consume_entitlement,
            WEBHOOK: self.webhooks.deliver,
        }

    async def finish_in_flight(self, grace: float = 5.0) -> None:
        """Shutdown: take no new job, and give the running ones up to `grace` seconds to
        finish, so a stop between Discord's answer and the job's record is rare (a crash is
        still covered: jobs left `running` are requeued at the next start)."""
        self._stopping = True
        if self._guild_tasks:
            await asyncio.wait(list(self._guild_tasks.values()), timeout=grace)
        if self.store.dialect != "sqlite":  # other processes go on: hand back what is left
            async with self.store.transaction() as tx:
                released = await tx.jobs.release(self.holder)
            if released:
                log.info("shutdown: %d running jobs handed back to the queue", released)

    def wake(self) -> None:
        """New work was queued: look now rather than at the next timer."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: requeue jobs a crash left running, then dispatch due jobs per guild.

        This process runs its guilds alone (SQLite: it holds the file; PostgreSQL: it holds
        a lease on each of its shards before it starts, bot/fleet.py `ShardClaims`), so a job
        of its guilds left `running` was a dead process's: it runs again now, first in its
        guild's lane as before, and the dead holder's fencing token no longer records it.
        """
        await self.discord.wait_ready()
        async with self.store.transaction() as tx:
            requeued = await tx.jobs.requeue_running(self.shards)
        if requeued:
            log.info("requeued %d jobs left running by a previous process", requeued)
        heartbeat = self._tasks.start(self._renew_leases(), name="delivery-leases")
        try:
            last_expiry = None
            while True:
                self._wake.clear()
                now = self.clock.now()
                if last_expiry is None or now - last_expiry > EXPIRY_CHECK:
                    async with self.store.transaction() as tx:
                        await tx.jobs.expire_overdue()
                        await tx.join_tokens.drop_expired()
                    last_expiry = now
                async with self.store.reading() as tx:
                    due = await tx.jobs.due_guilds(self.shards)
                    next_at = await tx.jobs.next_due_at(self.shards)
                for guild_id in due:
                    if guild_id not in self._guild_tasks and not self._stopping:
                        self._guild_tasks[guild_id] = self._tasks.start(
                            self._drain_guild(guild_id), name=f"delivery-{guild_id}"
                        )
                timeout = POLL if self.store.dialect == "sqlite" else SHARED_POLL
                if next_at is not None and not due:
                    timeout = min(timeout, max(0.05, (next_at - self.clock.now()).total_seconds()))
                await wait_event(self._wake, timeout)
        finally:
            heartbeat.cancel()
            await self._tasks.close()

    async def _renew_leases(self) -> None:
        """While jobs run, keep their leases ahead of the clock (a long 429 wait must not
        let another process claim a job that is still running here)."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            if not self._guild_tasks:
                continue
            try:
                async with self.store.transaction() as tx:
                    await tx.jobs.renew(self.holder, self.lease)
            except Exception:
                log.exception("renewing the delivery leases failed; trying again")

    async def _drain_guild(self, guild_id: int) -> None:
        try:
            while True:
                async with self.store.reading() as tx:
                    jobs = await tx.jobs.due(limit=100, guild_id=guild_id, shards=self.shards)
                if not jobs:
                    return
                for job in jobs:
                    if self._stopping:
                        return
                    try:
                        await self.execute(job)
                    except Exception:
                        # Bookkeeping failed after the attempt: leave the job `running`
                        # (requeued at the next start) and move on to the next one.
                        log.exception("job %s could not be recorded", job.id)
        finally:
            self._guild_tasks.pop(guild_id, None)
            self._wake.set()

    async def execute(self, job: Job) -> str:
        """Run one job once; return the outcome recorded."""
        async with self.store.transaction() as tx:
            claim = await tx.jobs.start(job.id, self.holder, self.lease)
            locale = await tx.locales.of(job.guild_id)  # DMs, panels, log: the guild's
        if claim is None:
            return "skipped"
        handler = self._handlers.get(job.kind)
        outcome, status, error, retry_at, waiting = (
            "completed",
            JobStatus.COMPLETED,
            None,
            None,
            False,
        )
        try:
            if handler is None:
                raise PermanentFailure(f"unknown job kind {job.kind!r}")
            with use_locale(locale):
                result = await handler(job)
        except MemberMissing:
            outcome, status, waiting = "waiting", JobStatus.PENDING, True
            error = "member is not in the server; waiting for them to join"
        except PermanentFailure as exc:
            outcome, status, error = "failed", JobStatus.FAILED, str(exc)
        except TransientFailure as exc:
            outcome, status, error = "retry", JobStatus.PENDING, str(exc)
            retry_at = self.clock.now() + timedelta(seconds=self._backoff(job, exc.retry_after))
        except asyncio.CancelledError:
            raise  # left `running`; requeued at the next start
        except Exception as exc:
            log.exception("job %s (%s) crashed", job.id, job.kind)
            outcome, status, error = "retry", JobStatus.PENDING, f"internal error: {exc!r}"[:300]
            retry_at = self.clock.now() + timedelta(seconds=self._backoff(job, None))
        async with self.store.transaction() as tx:
            held = await tx.jobs.finish(
                job.id,
                claim.attempt_id,
                status=status,
                outcome=outcome,
                error=error,
                retry_at=retry_at,
                waiting_for_member=waiting,
                fencing=claim.fencing,
            )
            if not held:  # our lease ran out and another process claimed the job: its record
                log.warning("job %s was claimed again by another process; not recorded", job.id)
                outcome = "superseded"
            elif outcome == "completed" and job.kind == "grant_role" and job.entitlement_id:
                entitlement = await tx.entitlements.get(job.entitlement_id)
                if entitlement is not None and result is not False:
                    await tx.entitlements.record_grant(entitlement, int(job.payload["role_id"]))
                elif entitlement is not None:
                    await tx.audit.add(
                        "role.preexisting",
                        guild_id=job.guild_id,
                        user_id=job.user_id,
                        role_id=job.payload["role_id"],
                        entitlement_id=entitlement.id,
                    )
            if outcome in ("completed", "failed"):
                await tx.audit.add(
                    f"job.{outcome}",
                    guild_id=job.guild_id,
                    user_id=job.user_id,
                    job_id=job.id,
                    job_kind=job.kind,
                    order_id=job.order_id,
                    error=error,
                )
                await self.planner.after_job(tx, job, error if outcome == "failed" else None)
        _log_outcome(job, outcome, error)
        self._on_outcome(job.kind, outcome)
        return outcome

    def _backoff(self, job: Job, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(retry_after, 0.05)
        delay = min(self.base_delay * 2 ** max(job.attempts, 0), self.max_delay)
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto

    # handlers --------------------------------------------------------------------------

    async def _grant_role(self, job: Job) -> bool:
        """Give the role; return False when the member already held it from someone else.

        A role an admin (or another bot) gave before the purchase is not ours: it gets no
        ledger row, so ending this access later never takes it away.
        """
        role_id = int(job.payload["role_id"])
        async with self.store.reading() as tx:
            entitlement = await tx.entitlements.get(job.entitlement_id or 0)
            ours = await tx.entitlements.granted_role_rows(job.guild_id, job.user_id, role_id)
        if entitlement is None or entitlement.status != EntitlementStatus.ACTIVE:
            raise PermanentFailure("access ended before the role could be given")
        async with self.store.reading() as tx:
            screening = await tx.roles.in_screening(job.guild_id, job.user_id)
        if screening:  # joined but not past membership screening: wait like an absent member
            raise MemberMissing()
        if role_id in await self.discord.member_role_ids(job.guild_id, job.user_id):
            return bool(ours)
        # Ledger first: if the process dies between Discord's 204 and this job's completion,
        # the role is still known to be ours, so ending the access takes it back.
        async with self.store.transaction() as tx:
            await tx.entitlements.record_grant(entitlement, role_id)
        await self.discord.add_role(
            job.guild_id, job.user_id, role_id, reason=f"shopbot: order #{job.order_id}"
        )
        return True

    async def _is_member(self, job: Job) -> bool:
        """The member is in the server and past membership screening."""
        try:
            await self.discord.member_role_ids(job.guild_id, job.user_id)
        except MemberMissing:
            return False
        return True

    async def _add_member(self, job: Job) -> str:
        """Add a web buyer to the server with their OAuth token and the product's roles.

        Someone already in the server is left to the grant_role jobs (Discord would ignore
        `roles` for them). The roles sent are written to the ledger first, as in
        `_grant_role`, so a crash after Discord's answer still knows they are ours. The
        token is deleted once the job has an answer, success or not; a transient failure
        keeps it for the retry.
        """
        async with self.store.reading() as tx:
            sealed = await tx.join_tokens.get(job.order_id or 0)
            entitlement = await tx.entitlements.get(job.entitlement_id or 0)
        if sealed is None or self.vault is None:
            raise PermanentFailure(
                "the buyer's Discord login expired before they could be added; "
                "they can join with the server's invite and get their roles then"
            )
        if entitlement is None or entitlement.status != EntitlementStatus.ACTIVE:
            await self._drop_token(job)
            raise PermanentFailure("access ended before the buyer could be added")
        if await self._is_member(job):
            await self._drop_token(job, joined="already a member")
            return "already a member"
        try:
            token = self.vault.open(sealed.ciphertext)
        except SealedTokenInvalid as exc:
            await self._drop_token(job)
            raise PermanentFailure(f"{exc}; the buyer can join with the server's invite") from None
        roles = [int(role) for role in job.payload.get("roles") or []]
        async with self.store.transaction() as tx:
            for role_id in roles:
                await tx.entitlements.record_grant(entitlement, role_id)
        try:
            added = await self.discord.add_member(
                job.guild_id, job.user_id, token, roles, reason=f"shopbot: order #{job.order_id}"
            )
        except PermanentFailure:
            async with self.store.transaction() as tx:
                for role_id in roles:
                    await tx.entitlements.mark_role_revoked(job.guild_id, job.user_id, role_id)
            await self._drop_token(job)
            raise
        outcome = "added" if added else "already a member"
        await self._drop_token(job, joined=outcome)
        return outcome

    async def _drop_token(self, job: Job, joined: str | None = None) -> None:
        async with self.store.transaction() as tx:
            await tx.join_tokens.drop(job.order_id or 0)
            if joined is not None:
                await tx.audit.add(
                    "member.added",
                    guild_id=job.guild_id,
                    user_id=job.user_id,
                    order_id=job.order_id,
                    result=joined,
                )

    async def _receipt(self, job: Job) -> None:
        """The buyer's DM once an order's delivery has run."""
        await self._order_dm(job, "receipt", receipt_text)

    async def _gift(self, job: Job) -> None:
        """The recipient's DM once a gift's delivery has run (job.user_id is the recipient)."""
        await self._order_dm(job, "gift notice", gift_text)

    async def _order_dm(
        self, job: Job, what: str, render: Callable[[Order, Product, list[Job]], str]
    ) -> None:
        """DM `job.user_id` about the job's order, naming any delivery of it that failed."""
        async with self.store.reading() as tx:
            order = await tx.orders.get(job.order_id or 0)
            product = await tx.products.get(order.product_id) if order else None
            jobs = (
                await tx.jobs.of_member(job.guild_id, order.recipient_id or 0, tuple(JobStatus))
                if order
                else []
            )
        if order is None or product is None:
            raise PermanentFailure(f"the order behind this {what} is gone")
        failed = [j for j in jobs if j.order_id == order.id and j.status == JobStatus.FAILED]
        await self._member_dm(job, render(order, product, failed), what)

    async def _send_message(self, job: Job) -> None:
        text = str(job.payload.get("message") or "")
        channel_id = job.payload.get("channel_id")
        if channel_id:
            await self.discord.send_channel(
                int(channel_id), text.replace("{user}", f"<@{job.user_id}>")
            )
        else:
            await self.discord.send_dm(job.user_id, text)

    async def _deliver_license(self, job: Job) -> None:
        """DM the order's license key; the same key again on a retry, never a second one."""
        if job.order_id is None:
            raise PermanentFailure("license keys are delivered for orders only")
        async with self.store.transaction() as tx:
            order = await tx.orders.get(job.order_id)
            product = await tx.products.get(order.product_id) if order else None
            key = await tx.products.assign_license(order.product_id, order.id) if order else None
        if order is None or product is None:
            raise PermanentFailure("the order behind this license is gone")
        if key is None:
            raise PermanentFailure(
                f"no license keys left for {product.name}: add some with /shop license add, "
                "then /shop retry"
            )
        await self.discord.send_dm(
            job.user_id, f"Your license key for **{product.name}**:\n`{key}`"
        )

    async def _kick(self, job: Job) -> None:
        await self.discord.kick(job.guild_id, job.user_id, reason=f"shopbot: order #{job.order_id}")

    async def _ban(self, job: Job) -> None:
        await self.discord.ban(job.guild_id, job.user_id, reason=f"shopbot: order #{job.order_id}")

    async def _create_invite(self, job: Job) -> None:
        channel_id = job.payload.get("channel_id")
        if not channel_id:
            raise PermanentFailure("create_invite action has no channel")
        url = await self.discord.create_invite(int(channel_id), reason=f"order #{job.order_id}")
        await self.discord.send_dm(job.user_id, f"Here is your invite: {url}")

    async def _revoke_role(self, job: Job) -> None:
        """Take back a role the bot gave, unless another active entitlement still grants it.

        The ledger decides: no `granted` row for this member and role means the bot never
        gave it (an admin or another bot did), so it stays.
        """
        role_id = int(job.payload["role_id"])
        async with self.store.reading() as tx:
            holders = await tx.entitlements.active_holders_of_role(
                job.guild_id, job.user_id, role_id
            )
            granted = await tx.entitlements.granted_role_rows(job.guild_id, job.user_id, role_id)
        if holders or not granted:
            why = "still granted by another active entitlement" if holders else "not given by us"
            async with self.store.transaction() as tx:
                await tx.audit.add(
                    "role.kept",
                    guild_id=job.guild_id,
                    user_id=job.user_id,
                    role_id=role_id,
                    job_id=job.id,
                    reason=why,
                    entitlements=holders,
                )
            return
        with contextlib.suppress(MemberMissing):  # they left the server, and their roles too
            await self.discord.remove_role(
                job.guild_id,
                job.user_id,
                role_id,
                reason=f"shopbot: access ended (order #{job.order_id})",
            )
        async with self.store.transaction() as tx:
            await tx.entitlements.mark_role_revoked(job.guild_id, job.user_id, role_id)

    async def _notice(self, job: Job) -> None:
        text = str(job.payload.get("text") or "")
        if not text:
            raise PermanentFailure("notice without text")
        buttons = [(str(b[0]), str(b[1])) for b in job.payload.get("buttons") or []]
        await self._member_dm(job, text, "notice", buttons)

    async def _member_dm(
        self, job: Job, text: str, what: str, buttons: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A DM of ours, headed by the server's name. Closed DMs never fail the order: the
        job completes and the miss is noted in the audit ledger (`/shop why`)."""
        server = self.discord.guild_name(job.guild_id)
        content = f"**{server}**\n{text}" if server else text
        try:
            await self.discord.send_dm(job.user_id, content, buttons)
        except PermanentFailure as exc:  # DMs closed, or the user is gone
            log.info("%s for user %s not delivered: %s", what, job.user_id, exc)
            async with self.store.transaction() as tx:
                await tx.audit.add(
                    "dm.closed",
                    guild_id=job.guild_id,
                    user_id=job.user_id,
                    order_id=job.order_id,
                    job_id=job.id,
                    reason=f"{what} not delivered: {exc}",
                )

    async def _consume_entitlement(self, job: Job) -> None:
        """A consumable Discord SKU was delivered: tell Discord it is used up (SPEC §6b)."""
        entitlement_id = int(job.payload["entitlement_id"])
        await self.discord.consume_entitlement(entitlement_id)
        async with self.store.transaction() as tx:
            await tx.skus.mark_consumed(entitlement_id)

    async def _log_flush(self, job: Job) -> None:
        """Post the guild's admin log notices (bot/notices.py)."""
        await flush_log(self.store, self.discord, job.guild_id)

    async def _edit_panel(self, job: Job) -> None:
        """Edit a shop panel message to show its products as they are now.

        The content is read when the job runs, so changes queued while it was pending are
        all in it; one made while the edit was on its way (the panel's version moved) sends
        it again. A panel whose message was deleted by hand is forgotten, not retried.
        """
        panel_id = int(job.payload["panel_id"])
        for _ in range(PANEL_ROUNDS):
            async with self.store.reading() as tx:
                panel = await tx.panels.get(panel_id)
                if panel is None:
                    return  # removed meanwhile (`/shop panel remove`)
                body = await panel_body(tx, panel)
            try:
                await self.discord.edit_message(panel.channel_id, panel.message_id, body)
            except MessageGone:
                async with self.store.transaction() as tx:
                    await tx.panels.forget(panel_id)
                    await tx.audit.add(
                        "panel.forgotten",
                        guild_id=job.guild_id,
                        panel_id=panel_id,
                        message_id=panel.message_id,
                        reason="the message was deleted",
                    )
                log.info(
                    "shop panel %s: message %s was deleted; forgotten", panel_id, panel.message_id
                )
                return
            async with self.store.reading() as tx:
                now = await tx.panels.get(panel_id)
            if now is None or now.version == panel.version:
                return
        raise TransientFailure("the panel's products kept changing; editing again")


def _log_outcome(job: Job, outcome: str, error: str | None) -> None:
    """One line an operator can follow per delivery: INFO when done, WARNING (with what
    to fix) when it failed for good; retries and waits stay at INFO."""
    who = f"user {job.user_id} in guild {job.guild_id}"
    if job.kind == "edit_panel":
        who = f"shop panel {job.payload.get('panel_id')} in guild {job.guild_id}"
    order = f" (order #{job.order_id})" if job.order_id else ""
    if outcome == "completed":
        if job.kind == "grant_role":
            log.info("role %s given to %s%s", job.payload.get("role_id"), who, order)
        elif job.kind == "revoke_role":
            log.info("role %s removed from %s%s", job.payload.get("role_id"), who, order)
        else:
            log.info("%s done for %s%s", job.kind.replace("_", " "), who, order)
    elif outcome == "failed":
        log.warning(
            "job %s (%s) for %s%s failed: %s; fix it, then `/shop retry %s`",
            job.id, job.kind, who, order, error, job.id,
        )  # fmt: skip
    else:
        log.info("job %s (%s) for %s %s: %s", job.id, job.kind, who, outcome, error)
