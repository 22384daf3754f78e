"""Notices the bot sends by itself: the admin log channel and the buyer's DMs (SPEC §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot.services import build_services
from bot.shop import ProductDraft
from bot.store import Store
from tests.unit.test_stock import expiry_loop_until, status_of
from tests.unit.world import (
    ADMIN,
    BUYER,
    GUILD,
    OTHER,
    ROLE,
    World,
    add_product,
    buy,
    period_end,
)

LOG = 777


async def with_log(world: World) -> None:
    """Turn the log channel on and post its first line, so tests count only what follows."""
    await world.services.notices.set_log_channel(GUILD, ADMIN, LOG)
    await flush_log(world)
    world.discord.posts.clear()


async def flush_log(world: World) -> None:
    """Let the batching window pass and run every due job."""
    await world.run_jobs()
    world.advance(seconds=16)
    await world.run_jobs()


def posts(world: World) -> list[str]:
    return [content for channel, content, _ in world.discord.posts if channel == LOG]


def dms_to(world: World, user: int) -> list[str]:
    return [text for who, text in world.discord.dms if who == user]


async def test_log_channel_posts_one_message_per_sale_refund_dispute_and_failed_delivery(
    world: World,
) -> None:
    """A sale, a failed delivery (role above the bot), a refund and a dispute: one log
    message each, naming what happened; the failed delivery carries a Retry button."""
    await add_product(world, "Gold")
    await with_log(world)

    sale = await buy(world, "gold")
    await flush_log(world)
    assert len(posts(world)) == 1
    assert "Sale: **Gold** (4.99 USD)" in posts(world)[0]
    assert f"<@{BUYER}>" in posts(world)[0] and f"order #{sale.id}" in posts(world)[0]

    world.discord.posts.clear()
    world.discord.refuse.add(OTHER)  # Missing Permissions: the role is above the bot's
    failed = await buy(world, "gold", user=OTHER)
    await world.run_jobs()
    world.discord.posts.clear()  # the sale of this order
    world.advance(seconds=16)
    await world.run_jobs()
    (content,) = posts(world)
    assert "Delivery failed" in content and "Missing Permissions" in content
    ((_, _, buttons),) = world.discord.posts
    (job_id,) = [row[0] for row in world.rows("SELECT id FROM delivery_jobs WHERE status='failed'")]
    assert buttons == [(f"Retry job #{job_id}", f"shop:retry:{job_id}")]
    assert failed.status == "paid"

    world.discord.posts.clear()
    world.stripe.refund(world.stripe.sessions[sale.stripe_session_id]["payment_intent"])
    await world.flush()
    await flush_log(world)
    assert len(posts(world)) == 1 and "Refund: order #" in posts(world)[0]

    world.discord.posts.clear()
    world.stripe.dispute(world.stripe.sessions[failed.stripe_session_id]["payment_intent"])
    await world.flush()
    await flush_log(world)
    assert len(posts(world)) == 1 and "Dispute (chargeback)" in posts(world)[0]


async def test_burst_of_100_sales_posts_a_summary_not_100_messages(world: World) -> None:
    """100 sales inside the window: one summary message (within Discord's limits)."""
    await add_product(world, "Gold")
    await with_log(world)
    for user in range(1000, 1100):
        await buy(world, "gold", user=user)
    await flush_log(world)
    assert len(posts(world)) == 1
    assert "**100 sales**" in posts(world)[0]
    assert "…and 95 more" in posts(world)[0]
    assert world.rows("SELECT COUNT(*) FROM log_notices WHERE sent_at IS NULL") == [(0,)]


async def test_burst_summary_shows_the_total_per_currency(world: World) -> None:
    """A burst summary's header adds up the sales, per currency (100 × 4.99 USD, 3 × 500 JPY)."""
    await add_product(world, "Gold")
    await world.shop.add_product(
        GUILD, ADMIN, ProductDraft(name="Yen", price="500", currency="jpy", role_id=ROLE)
    )
    await with_log(world)
    for user in range(1000, 1100):
        await buy(world, "gold", user=user)
    for user in range(2000, 2003):
        await buy(world, "yen", user=user)
    await flush_log(world)
    (content,) = posts(world)
    assert "**103 sales** · 1,500 JPY total · 499.00 USD total since" in content


async def test_log_channel_the_bot_cannot_post_in_fails_with_the_fix_orders_unaffected(
    world: World,
) -> None:
    """A forbidden log channel: the flush job fails with a clear reason (shown by /shop
    diagnose), the notices wait, and the sale itself is delivered as usual."""
    await add_product(world, "Gold")
    await with_log(world)
    world.discord.forbidden_channels.add(LOG)
    order = await buy(world, "gold")
    await flush_log(world)
    assert world.discord.roles[BUYER] == {ROLE}
    assert (await world.order(order.id)).status == "paid"
    channel, error = await world.services.notices.log_status(GUILD)
    assert channel == LOG and error is not None
    assert "cannot post in the admin log channel" in error and "Send Messages" in error
    assert world.rows("SELECT COUNT(*) FROM log_notices WHERE sent_at IS NULL") == [(1,)]

    world.discord.forbidden_channels.clear()  # fixed: /shop retry posts what waited
    await world.services.admin_ops.retry_jobs(GUILD, ADMIN, "failed")
    await world.run_jobs()
    assert len(posts(world)) == 1 and "Sale" in posts(world)[0]


async def test_no_log_channel_queues_no_notice(world: World) -> None:
    """Without a log channel nothing is written for it (empty = off)."""
    await add_product(world, "Gold")
    await world.services.notices.set_log_channel(GUILD, ADMIN, LOG)
    await world.services.notices.set_log_channel(GUILD, ADMIN, None)
    await world.run_jobs()
    await buy(world, "gold")
    await flush_log(world)
    assert world.rows("SELECT COUNT(*) FROM log_notices WHERE kind='sale'") == [(0,)]


async def test_receipt_names_the_server_and_a_gift_dms_both(world: World) -> None:
    """The receipt is headed by the server's name; a gift tells recipient and buyer."""
    await add_product(world, "Gold")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold", OTHER)
    world.stripe.complete_checkout(order.stripe_session_id)
    await world.flush()
    await world.run_jobs()
    (receipt,) = dms_to(world, BUYER)
    (gift,) = dms_to(world, OTHER)
    assert receipt.startswith("**Test Server**\n") and f"gift for <@{OTHER}>" in receipt
    assert gift.startswith("**Test Server**\n") and f"<@{BUYER}> bought you **Gold**" in gift


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("revoke", "a server admin removed it"),
        ("refund", "was refunded"),
        ("chargeback", "disputed with your bank (a chargeback)"),
        ("expiry", "its time ran out"),
        ("cancel", "the subscription was canceled"),
    ],
)
async def test_access_ended_dm_names_the_true_reason(world: World, how: str, says: str) -> None:
    """/shop revoke, a refund, a chargeback, an expiry and a cancellation each DM their own
    reason (an admin's revoke no longer says the time ran out)."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro" if how == "cancel" else "week")
    await world.run_jobs()
    world.discord.dms.clear()
    pi = world.stripe.sessions[order.stripe_session_id].get("payment_intent")
    if how == "revoke":
        await world.services.admin_ops.revoke(GUILD, ADMIN, BUYER, "week")
    elif how == "refund":
        world.stripe.refund(pi)
    elif how == "chargeback":
        world.stripe.dispute(pi)
    elif how == "expiry":
        world.advance(days=8)
        await world.expire()
    else:
        assert order.stripe_subscription_id is not None
        world.stripe.cancel_subscription(order.stripe_subscription_id)
    await world.flush()
    await world.run_jobs()
    (dm,) = dms_to(world, BUYER)
    assert says in dm
    assert "Test Server" in dm
    if how != "expiry":
        assert "time ran out" not in dm


async def test_reminders_arrive_once_each_across_a_restart_and_a_clock_jump(
    world: World,
) -> None:
    """reminder_days [3, 1] before a timed expiry: one DM at 3 days, one at 1 day, none
    again after a restart (a new World over the same file); a jump past both thresholds of
    a renewal sends only the nearest."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await add_product(world, "Pro", kind="subscription", interval="month")
    await buy(world, "week")
    pro = await buy(world, "pro", user=OTHER)
    await world.run_jobs()
    world.discord.dms.clear()
    notices = world.services.notices

    async def reminders_pass() -> None:
        async with world.store.transaction() as tx:
            await notices.periodic(tx)
        await world.run_jobs()

    world.advance(days=3)  # 4 days left: nothing yet
    await reminders_pass()
    assert dms_to(world, BUYER) == []
    world.advance(days=1, minutes=1)  # inside 3 days
    await reminders_pass()
    await reminders_pass()
    (first,) = dms_to(world, BUYER)
    assert "Reminder: your access to **Week** ends" in first

    # A restart: a second set of services over the same database file.
    await world.store.close()
    world.store = Store(
        world.settings.database.path, world.clock, url=world.settings.database.url_value
    )
    await world.store.open()
    services = build_services(
        world.settings, world.store, world.inbox.payments, world.clock, world.discord
    )
    world.worker, notices = services.worker, services.notices
    await reminders_pass()
    assert len(dms_to(world, BUYER)) == 1
    world.advance(days=2)  # inside 1 day
    await reminders_pass()
    await reminders_pass()
    assert len(dms_to(world, BUYER)) == 2 and "Week" in dms_to(world, BUYER)[1]

    # The subscription renews in ~27 days: jump to 12 hours before its renewal.
    assert pro.stripe_subscription_id is not None
    renews = period_end(world, pro.stripe_subscription_id)
    world.advance(seconds=(renews - world.clock.now() - timedelta(hours=12)).total_seconds())
    await reminders_pass()
    await reminders_pass()
    (renewal,) = dms_to(world, OTHER)
    assert "subscription renews" in renewal and "/manage" in renewal
    keys = [k for (k,) in world.rows("SELECT dedupe_key FROM delivery_jobs") if ":reminder:" in k]
    assert sorted(k.split(":")[3:5] for k in keys) == [
        ["expiry", "1"],
        ["expiry", "3"],
        ["renewal", "1"],
    ]


async def test_failed_renewal_dm_at_each_attempt_at_most_once_a_day_with_manage_button(
    world: World,
) -> None:
    """Each invoice.payment_failed DMs the buyer with the time access lasts and a /manage
    button — two attempts on one day give one DM, the next day's attempt another."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id
    assert sub_id is not None
    await world.run_jobs()
    world.discord.dms.clear()
    world.discord.dm_buttons.clear()
    world.advance(days=30, hours=1)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    world.advance(hours=2)
    world.stripe.fail_invoice(sub_id)  # Stripe's retry, the same day: no second DM
    await world.flush()
    await world.run_jobs()
    attempts = [e for e in world.stripe.events.values() if e["type"] == "invoice.payment_failed"]
    assert len(attempts) == 2
    failed = [t for t in dms_to(world, BUYER) if "payment for your **Pro**" in t]
    assert len(failed) == 1 and "You keep access until <t:" in failed[0]
    assert (BUYER, [("Manage subscription", f"shop:manage:{GUILD}")]) in world.discord.dm_buttons

    world.advance(hours=22)  # the next day, still inside the grace period
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    await world.run_jobs()
    assert len([t for t in dms_to(world, BUYER) if "payment for your **Pro**" in t]) == 2


async def test_a_closed_dm_never_fails_the_order_and_is_noted(world: World) -> None:
    """DMs closed: the receipt job completes, the role is given, and /shop why's ledger
    says the DM could not be delivered."""
    await add_product(world, "Gold")
    world.discord.closed_dms.add(BUYER)
    await buy(world, "gold")
    await world.run_jobs()
    assert world.rows("SELECT kind, status FROM delivery_jobs ORDER BY id") == [
        ("grant_role", "completed"),
        ("receipt", "completed"),
    ]
    report = await world.services.reports.member(GUILD, BUYER)
    assert any(a.kind == "dm.closed" for a in report.audit)


async def subscribed(world: World) -> tuple[int, str]:
    """A Pro subscription bought with the log on; its sale already posted and cleared."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    await with_log(world)
    order = await buy(world, "pro")
    assert order.stripe_subscription_id is not None
    await flush_log(world)
    world.discord.posts.clear()
    return order.id, order.stripe_subscription_id


async def test_log_channel_posts_a_renewal(world: World) -> None:
    """A paid renewal: one line naming the product, the amount, the member and the order."""
    order_id, sub_id = await subscribed(world)
    world.advance(days=30, hours=1)
    world.stripe.renew_subscription(sub_id)
    await world.flush()
    await flush_log(world)
    (content,) = posts(world)
    assert content.startswith("🔁 Renewal: **Pro** (4.99 USD)")
    assert f"<@{BUYER}>" in content and f"order #{order_id}" in content
    assert f"paid until <t:{int(period_end(world, sub_id).timestamp())}:D>" in content


async def test_log_channel_posts_a_failed_renewal_payment(world: World) -> None:
    """A failed renewal payment: one line naming the product, member, order and attempt."""
    order_id, sub_id = await subscribed(world)
    world.advance(days=30, hours=1)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    await flush_log(world)
    (content,) = posts(world)
    assert content.startswith("💳 Renewal payment failed: **Pro**")
    assert f"<@{BUYER}>" in content and f"order #{order_id}" in content
    assert "attempt 1" in content and "Stripe retries it" in content


async def test_log_channel_posts_a_cancellation(world: World) -> None:
    """A canceled subscription: one access-ended line with the cancellation as its reason."""
    order_id, sub_id = await subscribed(world)
    world.stripe.cancel_subscription(sub_id)
    await world.flush()
    await flush_log(world)
    (content,) = posts(world)
    assert content.startswith("⏹️ Access ended (subscription canceled): **Pro**")
    assert f"<@{BUYER}>" in content and f"order #{order_id}" in content


async def test_log_channel_posts_the_last_unit_selling_out(world: World) -> None:
    """stock=1: the sale and a sold-out line naming the product and the last order."""
    await add_product(world, "Gold", stock=1)
    await with_log(world)
    order = await buy(world, "gold")
    await flush_log(world)
    (content,) = posts(world)  # both notices of the batch in one message
    sale, sold_out = content.split("\n")
    assert sale.startswith("💰 Sale: **Gold**")
    assert sold_out == (
        f"📦 **Gold** is sold out (last unit: order #{order.id}). Add stock with "
        "`/shop product edit`."
    )


async def test_log_channel_posts_a_payment_after_sold_out(world: World) -> None:
    """A payment that lands after the last unit went elsewhere: a stock line naming the late
    order, the product and the shortage."""
    await add_product(world, "Gold", stock=1)
    await with_log(world)
    late, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    paid_late = world.stripe.complete_checkout(late.stripe_session_id)  # not delivered yet
    world.advance(minutes=45)
    await expiry_loop_until(world, lambda: status_of(world, late) == "expired")
    other, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    await world.deliver(world.stripe.complete_checkout(other.stripe_session_id))
    await flush_log(world)
    assert not any("after it sold out" in text for text in posts(world))
    world.discord.posts.clear()
    await world.deliver(paid_late)
    await flush_log(world)
    (content,) = posts(world)
    oversold = [line for line in content.split("\n") if "after it sold out" in line]
    assert oversold == [
        f"📦 Order #{late.id} of **Gold** was paid after it sold out (sold out); it was "
        "delivered anyway. Add stock or license keys, or refund it."
    ]


async def test_log_channel_posts_webhook_silence_once(world: World) -> None:
    """Checkouts started but no Stripe event for `shop.webhook_silence_hours`: one warning
    naming when the last event came; a second check of the same silence posts nothing."""
    await add_product(world, "Gold")
    await with_log(world)
    await buy(world, "gold")
    await flush_log(world)
    world.discord.posts.clear()
    ((last,),) = world.rows("SELECT MAX(received_at) FROM webhook_events")
    await world.shop.start_checkout(GUILD, OTHER, "gold")  # its webhook never comes
    hours = world.settings.shop.webhook_silence_hours

    async def check() -> None:
        async with world.store.transaction() as tx:
            await world.services.notices.periodic(tx)
        await flush_log(world)

    world.advance(hours=hours - 1)
    await check()
    assert posts(world) == []
    world.advance(hours=2)
    await check()
    await check()
    (content,) = posts(world)
    since = int(datetime.fromisoformat(last).timestamp())
    assert content.startswith(f"⚠️ No Stripe webhook received since <t:{since}:f>")
    assert "`/shop diagnose`" in content


async def test_log_channel_posts_a_reconciliation_fix(world: World) -> None:
    """Reconciliation gives back a role removed by hand: one line with the counts."""
    await add_product(world, "Gold")
    await with_log(world)
    await buy(world, "gold")
    await world.run_jobs()
    await flush_log(world)
    world.discord.posts.clear()
    world.advance(minutes=5)
    world.discord.roles[BUYER].clear()

    async def members() -> AsyncIterator[tuple[int, frozenset[int]]]:
        for user_id in (BUYER, OTHER):
            yield user_id, frozenset(world.discord.roles[user_id])

    await world.services.reconciler.reconcile(GUILD, members())
    await flush_log(world)
    (content,) = posts(world)
    assert content == (
        "🔧 Reconciliation found role drift and fixes it: 1 role(s) to give back, 0 to take "
        "away (2 members checked)."
    )
    assert world.discord.roles[BUYER] == {ROLE}
