"""SIGKILL between the webhook's 200 and the role grant: after restart, granted exactly once."""

from __future__ import annotations

from tests.shop import BUYER, Shop


async def restart_and_wait_for_role(shop: Shop) -> None:
    shop.bot.kill()
    shop.discord.faults.clear()
    await shop.bot.start()
    await shop.wait(lambda: shop.has_role(BUYER), "role after restart")
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt after restart")
    await shop.wait(
        lambda: (
            shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status != 'completed'") == 0
        ),
        "queue drained",
    )
    assert len(shop.role_adds(BUYER)) == 1
    assert len(shop.dms_to(BUYER)) == 1
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1
    assert shop.bot.scalar("SELECT status FROM orders") == "paid"


async def test_sigkill_right_after_webhook_ack(shop: Shop) -> None:
    """Killed the instant the 200 is sent: the stored event is processed after restart, once."""
    await shop.add_product()
    session_id = await shop.buy()
    await shop.pay(session_id)
    await restart_and_wait_for_role(shop)


async def test_sigkill_while_grant_is_retrying(shop: Shop) -> None:
    """Killed while Discord 5xx makes the grant retry: it resumes after restart, once."""
    await shop.add_product()
    session_id = await shop.buy()
    shop.discord.inject("/roles/", status=500, count=None)
    await shop.pay(session_id)
    await shop.wait(
        lambda: (
            (shop.bot.scalar("SELECT attempts FROM delivery_jobs WHERE kind='grant_role'") or 0)
            >= 1
        ),
        "a failed try",
    )
    assert not shop.has_role(BUYER)
    await restart_and_wait_for_role(shop)
