"""Embeds for /shop stats, /shop why and /shop diagnose (rendering only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.admin_reports import MemberReport, PeriodStats, QueuedJob
from bot.discord_adapter import role_problem
from bot.models import AuditEntry, Order
from bot.money import format_price
from cogs._options import ACTION_NAMES, readable
from cogs._ui import BRAND

if TYPE_CHECKING:
    from bot.app import ShopBot

OK, BAD = "✅", "❌"


PERIOD_NAMES = {"7d": "the last 7 days", "30d": "the last 30 days", "all": "all time"}
CHART = "revenue.png"


def _money(amounts: dict[str, int]) -> str:
    """Per currency, never added together: `$12.00 · ¥500`."""
    return " · ".join(format_price(v, c) for c, v in amounts.items())


def _counted(figures: dict[str, tuple[int, int]]) -> str:
    return " · ".join(f"{n} ({format_price(v, c)})" for c, (n, v) in figures.items())


def stats_embed(stats: PeriodStats) -> discord.Embed:
    """/shop stats [period]; the chart is attached as CHART and shown as the embed's image."""
    embed = discord.Embed(title=f"Shop stats — {PERIOD_NAMES[stats.period]}", colour=BRAND)
    embed.add_field(name="Revenue", value=_money(stats.revenue) or "none", inline=False)
    embed.add_field(
        name="Monthly recurring revenue", value=_money(stats.mrr) or "none", inline=False
    )
    trial = f" (+{stats.trialing} in a free trial)" if stats.trialing else ""
    embed.add_field(
        name="Subscribers",
        value=f"{stats.active_subscribers} active{trial} · {stats.new_subscriptions} new · "
        f"{stats.churned_subscriptions} ended",
        inline=False,
    )
    embed.add_field(
        name="Refunds and disputes",
        value=f"{_counted(stats.refunds) or 'no refunds'} · "
        f"{_counted(stats.disputes) or 'no disputes'}",
        inline=False,
    )
    done, failed = stats.deliveries.get("completed", 0), stats.deliveries.get("failed", 0)
    waiting = stats.deliveries.get("pending", 0) + stats.deliveries.get("running", 0)
    rate = f"{100 * stats.success_rate:.1f} %" if stats.success_rate is not None else "n/a"
    embed.add_field(
        name="Deliveries",
        value=f"{done} delivered · {failed} failed · {waiting} waiting · success {rate}",
        inline=False,
    )
    lines = [
        f"**{p.name}** — {p.sold} sold · {_money(p.revenue) or 'nothing received'}"
        for p in stats.per_product
    ]
    embed.add_field(name="Per product", value="\n".join(lines)[:1024] or "none", inline=False)
    embed.set_image(url=f"attachment://{CHART}")
    embed.set_footer(text="Days are UTC. Amounts are what Stripe received, before refunds.")
    return embed


def chart_title(stats: PeriodStats) -> str:
    return f"Revenue per day, {PERIOD_NAMES[stats.period]}"


def _ago(moment: datetime) -> str:
    return discord.utils.format_dt(moment, "R")


def _event(event_id: object) -> str:
    return f" (Stripe event `{event_id}`)" if event_id else ""


END_REASONS = {
    "expired": "its time ran out",
    "canceled": "the subscription was canceled",
    "lapsed": "a renewal was not paid",
    "refund": "it was refunded",
    "chargeback": "of a chargeback",
    "revoked": "an admin revoked it",
}


def history_line(entry: AuditEntry) -> str:
    """One audit row as a sentence, with when it happened and the Stripe event behind it."""
    d = entry.detail
    order = f"order #{d['order_id']}" if d.get("order_id") else "an order"
    by = f"<@{entry.actor_id}>" if entry.actor_id else "an admin"
    kind = entry.kind
    if kind == "order.paid":
        amount = format_price(d["amount"], d["currency"]) if d.get("currency") else ""
        text = f"{order.capitalize()} was paid{f' ({amount})' if amount else ''}"
    elif kind == "entitlement.grant":
        text = f"Access to **{d.get('product', '?')}** began with {order}"
    elif kind == "entitlement.end":
        reason = END_REASONS.get(str(d.get("reason")), str(d.get("reason") or "it ended"))
        text = f"Access from {order} ended because {reason}"
    elif kind == "entitlement.manual_grant":
        text = f"{by} gave access by hand"
    elif kind == "entitlement.manual_revoke":
        text = f"{by} took access away"
    elif kind == "subscription.paid":
        text = f"A subscription payment for {order} was received"
    elif kind == "subscription.payment_failed":
        attempt = f" (attempt {d['attempt']})" if d.get("attempt") else ""
        text = f"A subscription payment for {order} failed{attempt}"
    elif kind == "subscription.status":
        text = f"The subscription of {order} is now {d.get('status', '?')}"
    elif kind == "order.claim":
        text = f"{order.capitalize()} was claimed with its code"
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
    title = f"Why {member.display_name}" + (f" and @{role.name}" if role else "")
    embed = discord.Embed(title=title, colour=BRAND)
    if role is not None:
        holds = role in member.roles
        ours = [g for g in grants if g.role_id == role.id and g.status == "granted"]
        verdict = (
            ("has it, given by the shop" if ours else "has it, not given by the shop (kept)")
            if holds
            else "does not have it"
        )
        embed.description = f"{member.mention} {verdict}."
        grants = [g for g in grants if g.role_id == role.id]
    lines = []
    for entitlement, name in report.entitlements:
        source = f"order #{entitlement.order_id}" if entitlement.order_id else "a grant by hand"
        if entitlement.status == "active":
            until = (
                f"until {discord.utils.format_dt(entitlement.ends_at, 'D')}"
                if entitlement.ends_at
                else "for good"
            )
            lines.append(f"**{name}** is theirs {until}, from {source}.")
        else:
            reason = END_REASONS.get(entitlement.end_reason or "", entitlement.status)
            lines.append(
                f"**{name}** ended {_ago(entitlement.updated_at)} because {reason} ({source})."
            )
    embed.add_field(name="Access", value="\n".join(lines)[:1024] or "none", inline=False)
    ledger = [
        f"<@&{g.role_id}> was given {_ago(g.granted_at)}"
        + (f" and taken back {_ago(g.revoked_at)}" if g.revoked_at else "")
        + f" (access #{g.entitlement_id})."
        for g in grants
    ]
    embed.add_field(
        name="Roles the shop gave", value="\n".join(ledger)[:1024] or "none", inline=False
    )
    history = [history_line(a) for a in audit]
    shown = {a.detail.get("event_id") for a in audit}
    history += [
        f"{_ago(e.at)} Order #{e.order_id} was "
        f"{'refunded' if e.what == 'refund' else 'disputed (chargeback)'}{_event(e.event_id)}."
        for e in report.events
        if e.what in ("refund", "dispute") and e.event_id not in shown
    ]
    embed.add_field(name="History", value="\n".join(history)[:1024] or "none", inline=False)
    return embed


def job_line(queued: QueuedJob) -> str:
    """`#12` Give a role for @member failed 2 minutes ago after 5 tries: … (Stripe event …)."""
    job = queued.job
    what = readable(job.kind, ACTION_NAMES)
    if job.status == "pending" and job.waiting_for_member:
        state = f"waits for <@{job.user_id}> to be in the server"
    elif job.status == "pending":
        state = f"is waiting; next try {_ago(job.next_attempt_at)}"
    elif job.status == "running":
        state = "is running now"
    elif job.status == "completed":
        state = f"was done {_ago(job.updated_at)}"
    elif job.status == "failed":
        tries = f"{job.attempts} {'try' if job.attempts == 1 else 'tries'}"
        state = f"failed {_ago(job.updated_at)} after {tries}: {job.last_error or 'no reason'}"
    else:
        state = f"was {job.status} {_ago(job.updated_at)}"
    if job.waiting_for_member and job.status == "pending":
        whom = ""
    elif job.kind == "edit_panel":
        whom = f" of panel {job.payload.get('panel_id')}"
    elif job.user_id == 0:  # jobs of no member: the admin log flush
        whom = ""
    else:
        whom = f" for <@{job.user_id}>"
    return f"`#{job.id}` {what}{whom} {state}{_event(queued.event_id)}."


def order_line(
    order: Order, product_name: str, status_name: str, now: datetime, claim_expiry: timedelta
) -> str:
    """One `/shop orders` line. A paid order nobody has claimed yet (a web purchase without
    login) shows its code, and past `shop.claim_expiry_hours` what the admin can do."""
    if order.recipient_id is None and order.status == "paid":
        who = f"unclaimed (code `{order.claim_code}`)"
        since = order.paid_at or order.created_at
        if now - since > claim_expiry:
            hours = int(claim_expiry.total_seconds() // 3600)
            who += f", for over {hours} h: refund it or find the buyer"
    else:
        who = f"<@{order.recipient_id or order.buyer_id}>"
    return (
        f"`#{order.id}` {product_name} · {format_price(order.amount, order.currency)} · {who}"
        f" · {status_name} · {discord.utils.format_dt(order.created_at, 'R')}"
    )


def queue_embed(jobs: list[QueuedJob]) -> discord.Embed:
    lines = [job_line(q) for q in jobs]
    return discord.Embed(title="Delivery queue", colour=BRAND, description="\n".join(lines)[:4000])


def diagnose_embed(checks: list[tuple[bool, str]]) -> discord.Embed:
    healthy = all(ok for ok, _ in checks)
    embed = discord.Embed(
        title="Shop diagnosis: " + ("all good" if healthy else "needs attention"),
        colour=discord.Colour.green() if healthy else discord.Colour.red(),
    )
    embed.description = "\n".join(f"{OK if ok else BAD} {text}" for ok, text in checks)[:4000]
    return embed


async def log_channel_check(bot: ShopBot, guild_id: int) -> tuple[bool, str]:
    """The admin log channel: off, working, or why the last post failed."""
    channel_id, error = await bot.services.notices.log_status(guild_id)
    if channel_id is None:
        return True, "No admin log channel (`/shop settings log_channel` to choose one)"
    if error:
        return False, f"The admin log in <#{channel_id}> is failing: {error}"
    return True, f"Admin log channel: <#{channel_id}>"


async def diagnose_guild(bot: ShopBot, guild: discord.Guild) -> list[tuple[bool, str]]:
    """Everything that commonly breaks delivery, each with a verdict an admin can act on."""
    me = guild.me
    checks = [
        (
            bool(me and me.guild_permissions.manage_roles),
            "Manage Roles permission"
            if me and me.guild_permissions.manage_roles
            else "The bot lacks Manage Roles: it cannot give any role",
        ),
        (bot.intents.members, "Server Members intent is on"),
    ]
    problems = await bot.reports.problems(guild.id)
    failed_jobs, failed_events = problems.failed_jobs, problems.failed_events
    last_webhook = problems.last_webhook
    for role_id in problems.role_ids:
        role = guild.get_role(role_id)
        problem = "that role was deleted" if role is None else role_problem(guild, role)
        checks.append(
            (
                problem is None,
                f"<@&{role_id}> can be given" if problem is None else f"<@&{role_id}>: {problem}",
            )
        )
    url = f"{bot.settings.http.public_url}/healthz"
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as r:
            reachable = r.status < 500
            checks.append((reachable, f"{url} answers (HTTP {r.status})"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        checks.append(
            (
                False,
                f"{url} is not reachable ({type(exc).__name__}): Stripe cannot "
                "deliver webhooks; check http.public_url and your proxy",
            )
        )
    checks.append(
        (
            True,
            f"Last Stripe event for this server: {last_webhook}"
            if last_webhook
            else "No Stripe event for this server yet (none is expected before a sale)",
        )
    )
    checks.append((failed_jobs == 0, f"{failed_jobs} failed deliveries (see /shop queue)"))
    checks.append(
        (
            failed_events == 0,
            f"{failed_events} Stripe events for this server not applied (`shopbot events retry`)",
        )
    )
    checks.append(await log_channel_check(bot, guild.id))
    if problems.oversold:
        checks.append(
            (
                False,
                f"{problems.oversold} orders were paid after their product sold out (last 30 "
                "days) and delivered anyway: add stock or license keys, or refund them "
                "(details in /shop why)",
            )
        )
    return checks
