"""Notices the bot sends by itself: the admin log channel (texts, batching, posting) and the
periodic passes that plan reminders and the webhook-silence warning (SPEC §4).

A log notice is a row (`tx.notices`) written by `Planner.log` in the transaction of the fact
it reports; the guild's one `log_flush` job posts the unsent rows (bot/delivery.py calls
`flush_log`), so a notice survives a crash like any delivery, and a burst becomes a few
summary messages instead of one message per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot import i18n
from bot.clock import iso
from bot.config import Settings
from bot.errors import InvalidInput, PermanentFailure
from bot.i18n import N_, _
from bot.messages import reminder_text
from bot.models import Entitlement, JobStatus, Kind, Order, Product
from bot.money import format_price
from bot.planning import LOG_FLUSH, Keys, Planner, in_guild_locale
from bot.store import Store, Tx
from bot.store.notices import LogNotice

MAX_CONTENT = 2000  # Discord's limit for a message's content
MAX_BUTTONS = 5  # Retry buttons per message (one action row)
SUMMARY_AFTER = 5  # a batch with more notices than this is summarised per kind
SHOWN_PER_KIND = 5  # lines of one kind a summary still shows in full
MAX_LINE = 400

RETRY_CUSTOM_ID = "shop:retry:{job_id}"  # the Retry button (cogs/notices.py)
MANAGE_CUSTOM_ID = "shop:manage:{guild_id}"  # the /manage button of a failed-renewal DM
MANAGE_LABEL = N_("Manage subscription")  # its label, in the guild's language

#: kind → (singular, plural) for summaries
LABELS = {
    "sale": (N_("sale"), N_("sales")),
    "renewal": (N_("renewal"), N_("renewals")),
    "payment_failed": (N_("failed payment"), N_("failed payments")),
    "access_ended": (N_("access ended"), N_("accesses ended")),
    "refund": (N_("refund"), N_("refunds")),
    "dispute": (N_("dispute"), N_("disputes")),
    "delivery_failed": (N_("failed delivery"), N_("failed deliveries")),
    "stock": (N_("stock warning"), N_("stock warnings")),
    "webhook_silence": (N_("webhook warning"), N_("webhook warnings")),
    "reconcile": (N_("reconciliation fix"), N_("reconciliation fixes")),
}


class ChannelPoster(Protocol):
    """What posting needs from Discord (bot/discord_adapter.py)."""

    async def send_channel(
        self,
        channel_id: int,
        content: str,
        buttons: Sequence[tuple[str, str]] = (),
        *,
        mentions: bool = True,
    ) -> None: ...


# texts ---------------------------------------------------------------------------------


def sale_text(order: Order, product: Product, source: str) -> str:
    params = {
        "product": product.name,
        "price": format_price(order.amount, order.currency),
        "buyer": order.buyer_id,
        "order": order.id,
        "source": source,
    }
    if order.recipient_id is not None and order.recipient_id != order.buyer_id:
        return _(
            "💰 Sale: **{product}** ({price}) bought by <@{buyer}> as a gift for "
            "<@{recipient}> · order #{order} · via {source}",
            recipient=order.recipient_id,
            **params,
        )
    return _(
        "💰 Sale: **{product}** ({price}) bought by <@{buyer}> · order #{order} · via {source}",
        **params,
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _totals(group: list[LogNotice]) -> str:
    """` · 499.00 USD total` per currency of the notices that carry an amount."""
    sums: dict[str, int] = {}
    for notice in group:
        if notice.amount is not None and notice.currency:
            sums[notice.currency] = sums.get(notice.currency, 0) + notice.amount
    return "".join(
        _(" · {amount} total", amount=format_price(total, cur))
        for cur, total in sorted(sums.items())
    )


def webhook_silence_text(last: datetime | None) -> str:
    """The log warning when no Stripe webhook came while checkouts were started."""
    if last is None:
        return _(
            "⚠️ No Stripe webhook received ever, but checkouts were started since: payments "
            "may not be reaching the bot. Check the endpoint in Stripe's dashboard and "
            "`/shop diagnose`."
        )
    return _(
        "⚠️ No Stripe webhook received since {time}, but checkouts were started since: "
        "payments may not be reaching the bot. Check the endpoint in Stripe's dashboard and "
        "`/shop diagnose`.",
        time=f"<t:{int(last.timestamp())}:f>",
    )


# batching ------------------------------------------------------------------------------


@dataclass
class LogMessage:
    """One message to post: its content, Retry buttons and the notices it covers."""

    content: str = ""
    buttons: list[tuple[str, str]] = field(default_factory=list)
    notice_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Block:
    text: str
    notice_ids: list[int]
    retry_job_id: int | None = None


def _blocks(notices: list[LogNotice]) -> list[_Block]:
    """One block per notice; in a burst, kinds with many notices become one summary."""
    if len(notices) <= SUMMARY_AFTER:
        return [_Block(_clip(n.text), [n.id], n.retry_job_id) for n in notices]
    by_kind: dict[str, list[LogNotice]] = {}
    for notice in notices:
        by_kind.setdefault(notice.kind, []).append(notice)
    blocks: list[_Block] = []
    for kind, group in by_kind.items():
        if len(group) <= 2:
            blocks += [_Block(_clip(n.text), [n.id], n.retry_job_id) for n in group]
            continue
        one, many = LABELS.get(kind, (kind, kind))
        since = int(group[0].created_at.timestamp())
        header = f"**{len(group)} {_(many if len(group) > 1 else one)}**{_totals(group)}"
        header += _(" since {time}:", time=f"<t:{since}:T>")
        blocks.append(_Block(header, [group[0].id], None))
        shown, rest = group[:SHOWN_PER_KIND], group[SHOWN_PER_KIND:]
        blocks += [_Block("• " + _clip(n.text), [n.id], n.retry_job_id) for n in shown]
        if rest:
            more = "• " + _("…and {count} more", count=len(rest))
            if kind == "delivery_failed":
                more += " (`/shop queue status:failed`, `/shop retry failed`)"
            blocks.append(_Block(more, [n.id for n in rest]))
    return blocks


def render_batch(notices: list[LogNotice]) -> list[LogMessage]:
    """Pack the batch into as few messages as Discord's limits allow."""
    messages: list[LogMessage] = []
    current = LogMessage()
    for block in _blocks(notices):
        wants_button = block.retry_job_id is not None
        too_long = len(current.content) + len(block.text) + 1 > MAX_CONTENT
        too_many = wants_button and len(current.buttons) >= MAX_BUTTONS
        if current.notice_ids and (too_long or too_many):
            messages.append(current)
            current = LogMessage()
        current.content = f"{current.content}\n{block.text}" if current.content else block.text
        current.notice_ids += block.notice_ids
        if block.retry_job_id is not None:
            custom_id = RETRY_CUSTOM_ID.format(job_id=block.retry_job_id)
            current.buttons.append((_("Retry job #{job}", job=block.retry_job_id), custom_id))
    if current.notice_ids:
        messages.append(current)
    return messages


async def flush_log(store: Store, discord: ChannelPoster, guild_id: int) -> None:
    """Post the guild's unsent notices; each message's notices are marked sent once it is
    posted (a crash in between posts that message again: at-least-once)."""
    async with store.reading() as tx:
        channel_id = await tx.notices.log_channel(guild_id)
        notices = await tx.notices.unsent(guild_id)
    if channel_id is None or not notices:
        return
    for message in render_batch(notices):
        try:
            await discord.send_channel(channel_id, message.content, message.buttons, mentions=False)
        except PermanentFailure as exc:
            raise PermanentFailure(
                f"cannot post in the admin log channel <#{channel_id}>: {exc}. Give the bot "
                "View Channel and Send Messages there, or pick another channel with "
                "`/shop settings log_channel` (orders are not affected)"
            ) from None
        async with store.transaction() as tx:
            await tx.notices.mark_sent(message.notice_ids)


# periodic passes -----------------------------------------------------------------------


class Notices:
    """Reminders before end dates and the webhook-silence warning, planned from stored dates
    (so a restart or a clock jump loses nothing and repeats nothing)."""

    def __init__(self, settings: Settings, store: Store, planner: Planner) -> None:
        self.settings = settings
        self.store = store
        self.planner = planner

    async def set_log_channel(self, guild_id: int, actor_id: int, channel_id: int | None) -> None:
        """`/shop settings log_channel`: set it (and post a first line there) or turn it off."""
        async with self.store.transaction() as tx:
            before = await tx.notices.log_channel(guild_id)
            await tx.notices.set_log_channel(guild_id, channel_id, actor_id)
            await tx.audit.add(
                "settings.log_channel",
                guild_id=guild_id,
                actor_id=actor_id,
                channel_id=channel_id,
                before=before,
            )
            if channel_id is not None:
                text = await in_guild_locale(
                    tx,
                    guild_id,
                    lambda: _(
                        "📋 <@{admin}> chose this channel for the shop's log: sales, renewals, "
                        "failed payments, refunds, disputes and failed deliveries appear here.",
                        admin=actor_id,
                    ),
                )
                await self.planner.log(tx, guild_id, "settings", text)

    async def set_locale(self, guild_id: int, actor_id: int, locale: str | None) -> str:
        """`/shop settings locale`: the language of the guild's DMs, panels and log lines
        (None: back to the guild's preferred locale). Returns the language now in use;
        an unknown language raises InvalidInput and changes nothing."""
        chosen = None
        if locale is not None and locale.strip():
            chosen = i18n.parse_choice(locale)
            if chosen is None:
                raise InvalidInput(
                    _(
                        "`{locale}` is not a language the shop speaks; pick one of: {choices}.",
                        locale=locale[:20],
                        choices=", ".join(i18n.SUPPORTED),
                    )
                )
        async with self.store.transaction() as tx:
            before = await tx.locales.chosen(guild_id)
            await tx.locales.choose(guild_id, chosen, actor_id)
            await tx.audit.add(
                "settings.locale",
                guild_id=guild_id,
                actor_id=actor_id,
                locale=chosen,
                before=before,
            )
            return i18n.normalize(await tx.locales.of(guild_id))

    async def note_preferred_locale(self, guild_id: int, locale: str) -> None:
        """What Discord reports as the guild's preferred locale (GUILD_CREATE)."""
        async with self.store.transaction() as tx:
            await tx.locales.set_preferred(guild_id, locale)

    async def log_status(self, guild_id: int) -> tuple[int | None, str | None]:
        """The log channel, and why its latest post failed (None: it did not)."""
        async with self.store.reading() as tx:
            channel_id = await tx.notices.log_channel(guild_id)
            jobs = await tx.jobs.of_guild(guild_id, None, limit=200)
        flushes = [job for job in jobs if job.kind == LOG_FLUSH]
        latest = flushes[0] if flushes else None
        failed = latest is not None and latest.status == JobStatus.FAILED
        return channel_id, latest.last_error if failed and latest else None

    async def periodic(self, tx: Tx) -> int:
        """One pass of both; how many jobs were queued."""
        return await self.plan_reminders(tx) + await self.check_webhook_silence(tx)

    async def plan_reminders(self, tx: Tx, limit: int = 5000) -> int:
        """`shop.reminder_days` before a renewal, a trial's end or a timed expiry: one DM
        per threshold and end date; past several thresholds at once, only the nearest."""
        days = sorted(set(self.settings.shop.reminder_days))
        if not days:
            return 0
        queued = 0
        for entitlement in await tx.notices.ending_before(tx.now + timedelta(days=days[-1]), limit):
            assert entitlement.ends_at is not None
            left = entitlement.ends_at - tx.now
            nearest = min(d for d in days if left <= timedelta(days=d))
            product = await tx.products.get(entitlement.product_id)
            if product is None:
                continue
            kind = await self._reminder_kind(tx, entitlement, product)
            queued += await self.planner.notice(
                tx,
                entitlement.guild_id,
                entitlement.user_id,
                entitlement.order_id,
                key=Keys.reminder(entitlement.id, kind, nearest, entitlement.ends_at),
                text=await in_guild_locale(
                    tx, entitlement.guild_id, reminder_text, kind, product.name, entitlement.ends_at
                ),
            )
        return queued

    async def _reminder_kind(self, tx: Tx, entitlement: Entitlement, product: Product) -> str:
        if product.kind != Kind.SUBSCRIPTION or entitlement.order_id is None:
            return "expiry"
        order = await tx.orders.get(entitlement.order_id)
        sub_id = order.stripe_subscription_id if order else None
        sub = await tx.subscriptions.get(sub_id) if sub_id else None
        if sub is not None and sub.cancel_at_period_end:
            return "expiry"
        if sub is not None and sub.status == "trialing":
            return "trial"
        return "renewal"

    async def check_webhook_silence(self, tx: Tx) -> int:
        """No Stripe event for `shop.webhook_silence_hours` while checkouts were started:
        the webhook is probably not reaching us. Told once per silence."""
        window = timedelta(hours=self.settings.shop.webhook_silence_hours)
        last, checkouts = await tx.notices.webhook_silence()
        if last is not None and tx.now - last < window:
            return 0
        queued = 0
        for guild_id, oldest in checkouts:
            if tx.now - oldest < window:
                continue
            queued += await self.planner.log(
                tx,
                guild_id,
                "webhook_silence",
                await in_guild_locale(tx, guild_id, webhook_silence_text, last),
                key=f"guild:{guild_id}:log:webhook_silence:{iso(last) if last else 'never'}",
            )
        return queued
