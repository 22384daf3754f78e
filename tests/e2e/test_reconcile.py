"""Reconciliation at startup fixes roles edited by hand while the bot was down."""

from __future__ import annotations

from tests.shop import BUYER, FRIEND, Shop


def member_list_calls(shop: Shop) -> int:
    return sum(
        1
        for r in shop.discord.requests
        if r.method == "GET" and r.path.endswith(f"/guilds/{shop.guild_id}/members")
    )


async def test_missing_role_regranted_at_startup(shop: Shop) -> None:
    """A paid role removed by hand while the bot was down comes back; a hand-given one stays."""
    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await shop.bot.stop()
    shop.discord.update_member(shop.guild_id, BUYER, roles=[], dispatch=False)
    shop.discord.update_member(shop.guild_id, FRIEND, roles=[shop.vip_role], dispatch=False)
    calls_before = member_list_calls(shop)
    await shop.bot.start()
    await shop.wait(lambda: shop.has_role(BUYER), "role re-granted by reconciliation")
    assert shop.has_role(FRIEND), "a role given by hand must never be removed"
    assert member_list_calls(shop) - calls_before == 1
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM audit_log WHERE kind='reconcile'") == 1,
        "audited",
    )
    assert len(shop.role_adds(BUYER)) == 2


async def test_reconcile_after_invalid_session(shop: Shop) -> None:
    """A member whose join was lost in an invalidated session still gets their role."""
    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    shop.discord.remove_member(shop.guild_id, BUYER, dispatch=True)
    await shop.wait(lambda: not shop.has_role(BUYER), "left")
    shop.discord.add_member(shop.guild_id, BUYER, dispatch=False)  # the join event is lost
    await shop.discord.invalidate_session()
    await shop.wait(lambda: shop.has_role(BUYER), "role after re-identify", timeout=20)


async def test_missed_webhooks_recovered_at_start(shop: Shop) -> None:
    """Issue 9 item 3: paid while the bot was down past Stripe's retries; the next start
    lists Stripe's events and applies the one never received — no operator, nothing twice."""
    await shop.add_product()
    session_id = await shop.buy()
    await shop.bot.stop()
    event = shop.stripe.complete_checkout(session_id)  # its webhook never reaches us
    await shop.bot.start()
    await shop.wait(lambda: shop.has_role(BUYER), "role from the start-up catch-up")
    assert "1 we had never received" in shop.bot.log_text()
    status, _ = await shop.sender.send(event)  # Stripe's own retry, late: acknowledged
    assert status == 200
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status='pending'") == 0,
        "no job left pending",
    )
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1
    assert len(shop.role_adds(BUYER)) == 1
