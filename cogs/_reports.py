"""Embeds for /shop stats, /shop why and /shop diagnose (rendering only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.admin_reports import MemberReport, PeriodStats, QueuedJob
from bot.discord_adapter import role_problem
from bot.i18n import N_, _
from bot.models import AuditEntry, Order
from bot.money import format_price
from cogs._options import ACTION_NAMES, readable
from cogs._ui import BRAND

if TYPE_CHECKING:
    from bot.app import ShopBot

OK, BAD = "✅", "❌"


PERIOD_NAMES = {
    "7d": N_("the last 7 days"),
    "30d": N_("the last 30 days"),
    "all": N_("all time"),
}
CHART = "revenue.png"


def _money(amounts: dict[str, int]) -> str:
    """Per currency, never added together: `$12.00 · ¥500`."""
    return " · ".join(format_price(v, c) for c, v in amounts.items())


def _counted(figures: dict[str, tuple[int, int]]) -> str:
    return " · ".join(f"{n} ({format_price(v, c)})" for c, (n, v) in figures.items())


def stats_embed(stats: PeriodStats) -> discord.Embed:
    """/shop stats [period]; the chart is attached as CHART and shown as the embed's image."""
    period = _(PERIOD_NAMES[stats.period])
    embed = discord.Embed(title=_("Shop stats — {period}", period=period), colour=BRAND)
    none = _("none")
    embed.add_field(name=_("Revenue"), value=_money(stats.revenue) or none, inline=False)
    embed.add_field(
        name=_("Monthly recurring revenue"), value=_money(stats.mrr) or none, inline=False
    )
    subscribers = _(
        "{active} active · {new} new · {ended} ended",
        active=stats.active_subscribers,
        new=stats.new_subscriptions,
        ended=stats.churned_subscriptions,
    )
    if stats.trialing:
        subscribers = _(
            "{active} active (+{trialing} in a free trial) · {new} new · {ended} ended",
            active=stats.active_subscribers,
            trialing=stats.trialing,
            new=stats.new_subscriptions,
            ended=stats.churned_subscriptions,
        )
    embed.add_field(name=_("Subscribers"), value=subscribers, inline=False)
    embed.add_field(
        name=_("Refunds and disputes"),
        value=f"{_counted(stats.refunds) or _('no refunds')} · "
        f"{_counted(stats.disputes) or _('no disputes')}",
        inline=False,
    )
    done, failed = stats.deliveries.get("completed", 0), stats.deliveries.get("failed", 0)
    waiting = stats.deliveries.get("pending", 0) + stats.deliveries.get("running", 0)
    rate = f"{100 * stats.success_rate:.1f} %" if stats.success_rate is not None else _("n/a")
    embed.add_field(
        name=_("Deliveries"),
        value=_(
            "{done} delivered · {failed} failed · {waiting} waiting · success {rate}",
            done=done,
            failed=failed,
            waiting=waiting,
            rate=rate,
        ),
        inline=False,
    )
    lines = [
        _(
            "**{product}** — {sold} sold · {revenue}",
            product=p.name,
            sold=p.sold,
            revenue=_money(p.revenue) or _("nothing received"),
        )
        for p in stats.per_product
    ]
    embed.add_field(name=_("Per product"), value="\n".join(lines)[:1024] or none, inline=False)
    embed.set_image(url=f"attachment://{CHART}")
    embed.set_footer(text=_("Days are UTC. Amounts are what Stripe received, before refunds."))
    return embed


def chart_title(stats: PeriodStats) -> str:
    return _("Revenue per day, {period}", period=_(PERIOD_NAMES[stats.period]))


def _ago(moment: datetime) -> str:
    return discord.utils.format_dt(moment, "R")


def _event(event_id: object) -> str:
    return _(" (Stripe event `{event}`)", event=event_id) if event_id else ""


END_REASONS = {
    "expired": N_("its time ran out"),
    "canceled": N_("the subscription was canceled"),
    "lapsed": N_("a renewal was not paid"),
    "refund": N_("it was refunded"),
    "chargeback": N_("of a chargeback"),
    "revoked": N_("an admin revoked it"),
}


def _end_reason(reason: str | None, fallback: str) -> str:
    found = END_REASONS.get(reason or "")
    return _(found) if found else fallback


def history_line(entry: AuditEntry) -> str:
    """One audit row as a sentence, with when it happened and the Stripe event behind it."""
    d = entry.detail
    order = _("order #{order}", order=d["order_id"]) if d.get("order_id") else _("an order")
    by = f"<@{entry.actor_id}>" if entry.actor_id else _("an admin")
    kind = entry.kind
    if kind == "order.paid":
        amount = format_price(d["amount"], d["currency"]) if d.get("currency") else ""
        text = (
            _("{order} was paid ({amount})", order=order, amount=amount)
            if amount
            else _("{order} was paid", order=order)
        )
        text = text[:1].upper() + text[1:]
    elif kind == "entitlement.grant":
        text = _(
            "Access to **{product}** began with {order}", product=d.get("product", "?"), order=order
        )
    elif kind == "entitlement.end":
        reason = _end_reason(str(d.get("reason")), str(d.get("reason") or _("it ended")))
        text = _("Access from {order} ended because {reason}", order=order, reason=reason)
    elif kind == "entitlement.manual_grant":
        text = _("{admin} gave access by hand", admin=by)
    elif kind == "entitlement.manual_revoke":
        text = _("{admin} took access away", admin=by)
    elif kind == "subscription.paid":
        text = _("A subscription payment for {order} was received", order=order)
    elif kind == "subscription.payment_failed":
        text = (
            _(
                "A subscription payment for {order} failed (attempt {attempt})",
                order=order,
                attempt=d["attempt"],
            )
            if d.get("attempt")
            else _("A subscription payment for {order} failed", order=order)
        )
    elif kind == "subscription.status":
        text = _(
            "The subscription of {order} is now {status}", order=order, status=d.get("status", "?")
        )
    elif kind == "order.claim":
        text = _("{order} was claimed with its code", order=order)
        text = text[:1].upper() + text[1:]
    else:
        text = kind.replace(".", " ").replace("_", " ").capitalize()
    if d.get("reason") and kind != "entitlement.end":
        text += f": {d['reason']}"
    return f"{_ago(entry.created_at)} {text}{_event(d.get('event_id'))}."


def why_embed(
    member: discord.Member,
    role: discord.Role | None,
    report: MemberReport,
) -> discord.Embed:
    """Why the member has (or lacks) shop roles: access, ledger and recent history, as
    sentences with times, and the Stripe event behind each change."""
    grants, audit = report.grants, report.audit
    title = (
        _("Why {member} and @{role}", member=member.display_name, role=role.name)
        if role
        else _("Why {member}", member=member.display_name)
    )
    embed = discord.Embed(title=title, colour=BRAND)
    if role is not None:
        holds = role in member.roles
        ours = [g for g in grants if g.role_id == role.id and g.status == "granted"]
        if holds and ours:
            verdict = _("{member} has it, given by the shop.", member=member.mention)
        elif holds:
            verdict = _("{member} has it, not given by the shop (kept).", member=member.mention)
        else:
            verdict = _("{member} does not have it.", member=member.mention)
        embed.description = verdict
        grants = [g for g in grants if g.role_id == role.id]
    lines = []
    for entitlement, name in report.entitlements:
        source = (
            _("order #{order}", order=entitlement.order_id)
            if entitlement.order_id
            else _("a grant by hand")
        )
        if entitlement.status == "active":
            lines.append(
                _(
                    "**{product}** is theirs until {until}, from {source}.",
                    product=name,
                    until=discord.utils.format_dt(entitlement.ends_at, "D"),
                    source=source,
                )
                if entitlement.ends_at
                else _(
                    "**{product}** is theirs for good, from {source}.", product=name, source=source
                )
            )
        else:
            reason = _end_reason(entitlement.end_reason, entitlement.status)
            lines.append(
                _(
                    "**{product}** ended {when} because {reason} ({source}).",
                    product=name,
                    when=_ago(entitlement.updated_at),
                    reason=reason,
                    source=source,
                )
            )
    none = _("none")
    embed.add_field(name=_("Access"), value="\n".join(lines)[:1024] or none, inline=False)
    ledger = [
        (
            _(
                "<@&{role}> was given {given} and taken back {taken} (access #{access}).",
                role=g.role_id,
                given=_ago(g.granted_at),
                taken=_ago(g.revoked_at),
                access=g.entitlement_id,
            )
            if g.revoked_at
            else _(
                "<@&{role}> was given {given} (access #{access}).",
                role=g.role_id,
                given=_ago(g.granted_at),
                access=g.entitlement_id,
            )
        )
        for g in grants
    ]
    embed.add_field(
        name=_("Roles the shop gave"), value="\n".join(ledger)[:1024] or none, inline=False
    )
    history = [history_line(a) for a in audit]
    shown = {a.detail.get("event_id") for a in audit}
    history += [
        f"{_ago(e.at)} "
        + (
            _("Order #{order} was refunded", order=e.order_id)
            if e.what == "refund"
            else _("Order #{order} was disputed (chargeback)", order=e.order_id)
        )
        + f"{_event(e.event_id)}."
        for e in report.events
        if e.what in ("refund", "dispute") and e.event_id not in shown
    ]
    embed.add_field(name=_("History"), value="\n".join(history)[:1024] or none, inline=False)
    return embed


def job_line(queued: QueuedJob) -> str:
    """`#12` Give a role for @member failed 2 minutes ago after 5 tries: … (Stripe event …)."""
    job = queued.job
    what = readable(job.kind, ACTION_NAMES)
    if job.status == "pending" and job.waiting_for_member:
        state = _("waits for <@{member}> to be in the server", member=job.user_id)
    elif job.status == "pending":
        state = _("is waiting; next try {when}", when=_ago(job.next_attempt_at))
    elif job.status == "running":
        state = _("is running now")
    elif job.status == "completed":
        state = _("was done {when}", when=_ago(job.updated_at))
    elif job.status == "failed":
        params = {"when": _ago(job.updated_at), "reason": job.last_error or _("no reason")}
        state = (
            _("failed {when} after 1 try: {reason}", **params)
            if job.attempts == 1
            else _("failed {when} after {tries} tries: {reason}", tries=job.attempts, **params)
        )
    else:
        state = _("was {status} {when}", status=job.status, when=_ago(job.updated_at))
    if job.waiting_for_member and job.status == "pending":
        whom = ""
    elif job.kind == "edit_panel":
        whom = _(" of panel {panel}", panel=job.payload.get("panel_id"))
    elif job.user_id == 0:  # jobs of no member: the admin log flush
        whom = ""
    else:
        whom = _(" for <@{member}>", member=job.user_id)
    return f"`#{job.id}` {what}{whom} {state}{_event(queued.event_id)}."


def order_line(
    order: Order, product_name: str, status_name: str, now: datetime, claim_expiry: timedelta
) -> str:
    """One `/shop orders` line. A paid order nobody has claimed yet (a web purchase without
    login) shows its code, and past `shop.claim_expiry_hours` what the admin can do."""
    if order.recipient_id is None and order.status == "paid":
        since = order.paid_at or order.created_at
        if now - since > claim_expiry:
            who = _(
                "unclaimed (code `{code}`), for over {hours} h: refund it or find the buyer",
                code=order.claim_code,
                hours=int(claim_expiry.total_seconds() // 3600),
            )
        else:
            who = _("unclaimed (code `{code}`)", code=order.claim_code)
    else:
        who = f"<@{order.recipient_id or order.buyer_id}>"
    return (
        f"`#{order.id}` {product_name} · {format_price(order.amount, order.currency)} · {who}"
        f" · {status_name} · {discord.utils.format_dt(order.created_at, 'R')}"
    )


def queue_embed(jobs: list[QueuedJob]) -> discord.Embed:
    lines = [job_line(q) for q in jobs]
    return discord.Embed(
        title=_("Delivery queue"), colour=BRAND, description="\n".join(lines)[:4000]
    )


def diagnose_embed(checks: list[tuple[bool, str]]) -> discord.Embed:
    healthy = all(ok for ok, _text in checks)
    embed = discord.Embed(
        title=_("Shop diagnosis: all good") if healthy else _("Shop diagnosis: needs attention"),
        colour=discord.Colour.green() if healthy else discord.Colour.red(),
    )
    embed.description = "\n".join(f"{OK if ok else BAD} {text}" for ok, text in checks)[:4000]
    return embed


async def log_channel_check(bot: ShopBot, guild_id: int) -> tuple[bool, str]:
    """The admin log channel: off, working, or why the last post failed."""
    channel_id, error = await bot.services.notices.log_status(guild_id)
    if channel_id is None:
        return True, _("No admin log channel (`/shop settings log_channel` to choose one)")
    if error:
        return False, _(
            "The admin log in <#{channel}> is failing: {error}", channel=channel_id, error=error
        )
    return True, _("Admin log channel: <#{channel}>", channel=channel_id)


async def diagnose_guild(bot: ShopBot, guild: discord.Guild) -> list[tuple[bool, str]]:
    """Everything that commonly breaks delivery, each with a verdict an admin can act on."""
    me = guild.me
    checks = [
        (
            bool(me and me.guild_permissions.manage_roles),
            _("Manage Roles permission")
            if me and me.guild_permissions.manage_roles
            else _("The bot lacks Manage Roles: it cannot give any role"),
        ),
        (bot.intents.members, _("Server Members intent is on")),
    ]
    problems = await bot.reports.problems(guild.id)
    failed_jobs, failed_events = problems.failed_jobs, problems.failed_events
    last_webhook = problems.last_webhook
    for role_id in problems.role_ids:
        role = guild.get_role(role_id)
        problem = _("that role was deleted") if role is None else role_problem(guild, role)
        checks.append(
            (
                problem is None,
                _("<@&{role}> can be given", role=role_id)
                if problem is None
                else f"<@&{role_id}>: {problem}",
            )
        )
    url = f"{bot.settings.http.public_url}/healthz"
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as r:
            reachable = r.status < 500
            checks.append((reachable, _("{url} answers (HTTP {status})", url=url, status=r.status)))
    except (aiohttp.ClientError, TimeoutError) as exc:
        checks.append(
            (
                False,
                _(
                    "{url} is not reachable ({error}): Stripe cannot deliver webhooks; check "
                    "http.public_url and your proxy",
                    url=url,
                    error=type(exc).__name__,
                ),
            )
        )
    checks.append(
        (
            True,
            _("Last Stripe event for this server: {when}", when=last_webhook)
            if last_webhook
            else _("No Stripe event for this server yet (none is expected before a sale)"),
        )
    )
    checks.append(
        (failed_jobs == 0, _("{count} failed deliveries (see /shop queue)", count=failed_jobs))
    )
    checks.append(
        (
            failed_events == 0,
            _(
                "{count} Stripe events for this server not applied (`shopbot events retry`)",
                count=failed_events,
            ),
        )
    )
    checks.append(await log_channel_check(bot, guild.id))
    if problems.oversold:
        checks.append(
            (
                False,
                _(
                    "{count} orders were paid after their product sold out (last 30 days) and "
                    "delivered anyway: add stock or license keys, or refund them (details in "
                    "/shop why)",
                    count=problems.oversold,
                ),
            )
        )
    return checks
