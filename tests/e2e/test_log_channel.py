"""The admin log channel end to end: a failed delivery is posted with a Retry button that
works for an admin and is refused, server-side, for anyone else."""

from __future__ import annotations

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
