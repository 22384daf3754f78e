"""The admin log channel end to end: a failed delivery is posted with a Retry button that
works for an admin and is refused, server-side, for anyone else."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.harness import MANAGE_GUILD
from tests.shop import ADMIN, BUYER, STRANGER, Shop, text_of


def log_posts(shop: Shop, channel_id: int) -> list[dict[str, Any]]:
    return [m for m in shop.discord.messages.values() if int(m["channel_id"]) == channel_id]


async def test_log_channel_posts_failed_delivery_with_retry_button_for_admins_only(
    shop: Shop,
) -> None:
    """/shop settings log_channel; a sale whose role is above the bot: one log message (sale
    and failed delivery, batched) with a Retry button; a member without Manage Server is
    refused and nothing is queued; the admin's press re-queues the job, which then succeeds."""
    channel = shop.discord.add_channel(shop.guild_id, "shop-log")
    reply = await shop.admin("shop settings log_channel", {"channel": channel.id})
    assert "will post" in text_of(reply)
    await shop.wait(lambda: log_posts(shop, channel.id), "the first log line", timeout=30)
    await shop.add_product()
    session_id = await shop.buy()
    shop.discord.update_role(shop.guild_id, shop.vip_role, position=80)
    await shop.pay(session_id)
    await shop.wait(
        lambda: any(
            "Delivery failed" in (m.get("content") or "") for m in log_posts(shop, channel.id)
        ),
        "the failed delivery in the log",
        timeout=40,
    )
    (post,) = [m for m in log_posts(shop, channel.id) if "Delivery failed" in (m["content"] or "")]
    assert "Sale: **VIP**" in post["content"]  # same window: one message
    assert "above the bot's highest role" in post["content"]
    job_id = shop.bot.scalar("SELECT id FROM delivery_jobs WHERE kind='grant_role'")
    custom_id = f"shop:retry:{job_id}"
    assert post["components"][0]["components"][0]["custom_id"] == custom_id

    shop.discord.add_member(shop.guild_id, STRANGER, dispatch=False)
    refused = await shop.discord.click_component(
        shop.guild_id, STRANGER, custom_id, message_id=int(post["id"]), permissions="0"
    )
    message = await refused.wait_message()
    assert refused.is_ephemeral() and "Only server admins" in text_of(message)
    assert shop.bot.scalar("SELECT status FROM delivery_jobs WHERE id=?", (job_id,)) == "failed"

    shop.discord.update_role(shop.guild_id, shop.vip_role, position=2)  # the admin's fix
    pressed = await shop.discord.click_component(
        shop.guild_id, ADMIN, custom_id, message_id=int(post["id"]), permissions=str(MANAGE_GUILD)
    )
    message = await pressed.wait_message()
    assert pressed.is_ephemeral() and f"Retrying job #{job_id}" in text_of(message)
    await shop.wait(lambda: shop.has_role(BUYER), "role given after the retry")


def posts_containing(shop: Shop, channel_id: int, text: str) -> list[dict[str, Any]]:
    return [m for m in log_posts(shop, channel_id) if text in (m.get("content") or "")]


async def test_log_channel_a_burst_of_100_sales_then_a_refund_and_a_dispute(shop: Shop) -> None:
    """Through the real process: 100 sales in a burst post one summary message (a count and
    the total), not 100 messages; then the refund and the dispute of two of those orders
    each post one message naming the order."""
    channel = shop.discord.add_channel(shop.guild_id, "shop-log")
    await shop.admin("shop settings log_channel", {"channel": channel.id})
    await shop.add_product()  # the channel's first line may go out with the burst
    buyers = [900_000 + n for n in range(100)]
    for user in buyers:
        shop.discord.add_member(shop.guild_id, user, dispatch=False)
    for chunk in range(0, len(buyers), 20):  # a burst: twenty buyers at a time
        sessions = await asyncio.gather(*(shop.buy(user) for user in buyers[chunk : chunk + 20]))
        await asyncio.gather(*(shop.pay(session_id) for session_id in sessions))
    summary = await shop.wait(
        lambda: posts_containing(shop, channel.id, "100 sales"), "the burst's summary", 60
    )
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM log_notices WHERE sent_at IS NULL") == 0,
        "every notice posted",
    )
    burst = log_posts(shop, channel.id)
    assert len(burst) < 5, [m["content"][:80] for m in burst]  # not 100 messages
    assert "499.00" in summary[0]["content"]  # 100 × $4.99

    orders = dict(shop.bot.query("SELECT buyer_id, stripe_payment_intent_id FROM orders"))
    shop.stripe.refund(orders[buyers[0]])
    await shop.sender.send(shop.stripe.events_of_type("charge.refunded")[-1])
    refund = await shop.wait(
        lambda: posts_containing(shop, channel.id, "Refund: order"), "the refund's post", 40
    )
    await shop.sender.send(shop.stripe.dispute(orders[buyers[1]]))
    dispute = await shop.wait(
        lambda: posts_containing(shop, channel.id, "Dispute (chargeback)"), "the dispute", 40
    )
    assert len(refund) == len(dispute) == 1 and refund[0]["id"] != dispute[0]["id"]
    assert f"<@{buyers[0]}>" in refund[0]["content"] and "Dispute" not in refund[0]["content"]
    assert f"<@{buyers[1]}>" in dispute[0]["content"] and "Refund:" not in dispute[0]["content"]
