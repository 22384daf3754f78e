"""Catalog and buyer surfaces end to end: edit/remove/list, autocomplete, pages, closed DMs."""

from __future__ import annotations

import aiohttp

from tests.shop import BUYER, Shop, text_of


async def test_edit_remove_list(shop: Shop) -> None:
    """Admins edit price/stock/active, list shows it, remove archives but keeps history."""
    await shop.add_product("VIP", "4.99")
    reply = await shop.admin("shop product edit", {"product": "vip", "price": "6.50", "stock": 3})
    assert "6.50 USD" in text_of(reply)
    listing = text_of(await shop.admin("shop product list"))
    assert "VIP" in listing and "3 left" in listing
    await shop.admin("shop product edit", {"product": "VIP", "active": False})
    refused = await shop.command(BUYER, "buy", {"product": "VIP"})
    assert "not for sale" in text_of(refused)
    assert "Nothing to change" in text_of(await shop.admin("shop product edit", {"product": "VIP"}))
    await shop.admin("shop product remove", {"product": "VIP"})
    assert "No products" in text_of(await shop.admin("shop product list"))
    assert shop.bot.scalar("SELECT archived FROM products") == 1
    missing = await shop.command(BUYER, "buy", {"product": "VIP"})
    assert "no product called" in text_of(missing)


async def test_autocomplete_lists_active_products(shop: Shop) -> None:
    """/buy autocompletes active products of the guild by name, with their price."""
    await shop.add_product("VIP", "4.99")
    await shop.add_product("Gold", "10", role=None)
    await shop.admin("shop product edit", {"product": "Gold", "active": False})
    inter = await shop.discord.autocomplete(
        shop.guild_id, BUYER, "buy", [{"name": "product", "type": 3, "value": "v", "focused": True}]
    )
    choices = await inter.wait_choices()
    assert [c["name"] for c in choices] == ["VIP — 4.99 USD"]


async def test_success_and_cancel_pages(shop: Shop) -> None:
    """The success page shows product and claim code; unknown sessions get a friendly 404."""
    await shop.add_product("VIP", "4.99")
    session_id = await shop.buy()
    await shop.pay(session_id)
    await shop.wait(lambda: shop.bot.scalar("SELECT claim_code FROM orders"), "claim code")
    code = shop.bot.scalar("SELECT claim_code FROM orders")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{shop.bot.url}/checkout/success", params={"session_id": session_id}
        ) as page:
            body = await page.text()
            assert page.status == 200
            assert code in body and "VIP" in body and str(shop.guild_id) in body
            assert shop.stripe.secret_key not in body
        async with http.get(
            f"{shop.bot.url}/checkout/success", params={"session_id": "cs_nope<script>"}
        ) as page:
            assert page.status == 404
            assert "<script>" not in await page.text()
        async with http.get(f"{shop.bot.url}/checkout/cancel") as page:
            assert page.status == 200 and "Nothing was charged" in await page.text()


async def test_closed_dms_do_not_fail_the_grant(shop: Shop) -> None:
    """A buyer with DMs closed still gets the role; the receipt job completes without failing."""
    await shop.add_product()
    shop.discord.set_dm_closed(BUYER, True)
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await shop.wait(
        lambda: (
            shop.bot.scalar("SELECT status FROM delivery_jobs WHERE kind='receipt'") == "completed"
        ),
        "receipt done",
    )
    assert shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status='failed'") == 0


async def test_gift_goes_to_the_recipient(shop: Shop) -> None:
    """/buy gift_to gives the entitlement and role to the recipient; the buyer gets the receipt."""
    from tests.shop import FRIEND

    await shop.add_product()
    session_id = await shop.buy(BUYER, "VIP", gift_to=FRIEND)
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(FRIEND), "gift role")
    assert not shop.has_role(BUYER)
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt to the buyer")
    assert "gift" in str(shop.dms_to(BUYER)[0])


async def test_slow_or_failing_stripe(shop: Shop) -> None:
    """/buy defers within Discord's 3 s when Stripe is slow; a Stripe error is a clear reply."""
    await shop.add_product()
    shop.stripe.inject("/v1/checkout/sessions", status=None, delay=4.0, count=1)
    session_id = await shop.buy()
    assert session_id
    shop.stripe.inject(
        "/v1/checkout/sessions", status=400, count=1, error_type="invalid_request_error"
    )
    from tests.shop import FRIEND  # BUYER's link is still open: /buy would give it again

    reply = await shop.command(FRIEND, "buy", {"product": "VIP"})
    assert "Stripe refused this checkout" in text_of(reply)
    assert shop.bot.scalar("SELECT status FROM orders ORDER BY id DESC LIMIT 1") == "failed"


async def test_orders_and_retry(shop: Shop) -> None:
    """/shop orders lists orders by member; /shop retry re-runs a failed job once fixed."""
    from tests.shop import FRIEND

    await shop.add_product()
    session_id = await shop.buy()
    shop.discord.update_role(shop.guild_id, shop.vip_role, position=80)
    await shop.pay(session_id)
    await shop.wait(
        lambda: (
            shop.bot.scalar("SELECT status FROM delivery_jobs WHERE kind='grant_role'") == "failed"
        ),
        "job failed",
    )
    listing = text_of(await shop.admin("shop orders", {"member": BUYER}))
    assert "VIP" in listing and "paid" in listing and "4.99 USD" in listing
    assert "No orders" in text_of(await shop.admin("shop orders", {"member": FRIEND}))
    assert "Give a job number" in text_of(await shop.admin("shop retry", {"job": "nonsense"}))
    shop.discord.update_role(shop.guild_id, shop.vip_role, position=2)
    assert "Retrying 1" in text_of(await shop.admin("shop retry", {"job": "failed"}))
    await shop.wait(lambda: shop.has_role(BUYER), "role after retry")


async def test_stats_why_and_diagnose(shop: Shop) -> None:
    """Admins see revenue, why a member has a role, and what is misconfigured, without logs."""
    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status='completed'") == 2,
        "jobs done",
    )
    stats = text_of(await shop.admin("shop stats"))
    assert "4.99 USD" in stats and "1 sold" in stats and "success 100.0 %" in stats
    why = text_of(await shop.admin("shop why", {"member": BUYER, "role": shop.vip_role}))
    assert "given by the shop" in why and "order #1" in why and "Order #1 was paid" in why
    healthy = text_of(await shop.admin("shop diagnose"))
    assert "all good" in healthy, healthy
    shop.discord.update_role(shop.guild_id, shop.vip_role, position=80)
    broken = text_of(await shop.admin("shop diagnose"))
    assert "needs attention" in broken and "above the bot's highest role" in broken


async def test_actions_and_license_keys(shop: Shop) -> None:
    """Actions run at purchase (message + one license key per order); bad actions are refused."""
    await shop.add_product("Game", "15", role=None)
    reply = await shop.admin("shop license add", {"product": "Game", "keys": "AAA-1 BBB-2 AAA-1"})
    assert "Added 2 keys" in text_of(reply)
    for options in [
        {"type": "deliver_license", "stage": "on_purchase"},
        {"type": "send_message", "stage": "on_purchase", "message": "Welcome, enjoy the game!"},
        {
            "type": "grant_role",
            "stage": "on_purchase",
            "role": shop.vip_role,
            "revoke_on": "on_refund",
        },
    ]:
        assert "Added action" in text_of(
            await shop.admin("shop action add", {"product": "Game", **options})
        )
    for options, expected in [
        ({"type": "grant_role", "stage": "on_expire", "role": shop.vip_role}, "only runs"),
        ({"type": "send_message", "stage": "on_refund"}, "needs a `message`"),
        (
            {
                "type": "grant_role",
                "stage": "on_purchase",
                "role": shop.vip_role,
                "revoke_on": "sometimes",
            },
            "revoke_on",
        ),
    ]:
        assert expected in text_of(
            await shop.admin("shop action add", {"product": "Game", **options})
        )
    listing = text_of(await shop.admin("shop action list", {"product": "Game"}))
    assert "deliver_license" in listing and "revoke on on_refund" in listing
    await shop.pay(await shop.buy(product="Game"))
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await shop.wait(lambda: len(shop.dms_to(BUYER)) >= 3, "key, message and receipt DMs")
    dms = " ".join(str(dm) for dm in shop.dms_to(BUYER))
    assert "AAA-1" in dms and "Welcome, enjoy the game!" in dms
    assert shop.bot.scalar("SELECT COUNT(*) FROM license_keys WHERE order_id IS NOT NULL") == 1
    action_id = shop.bot.scalar("SELECT id FROM actions WHERE type='send_message'")
    assert "Removed action" in text_of(
        await shop.admin("shop action remove", {"action_id": action_id})
    )
