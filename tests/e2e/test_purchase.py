"""The purchase loop end to end: /shop product add → /buy → Stripe → webhook → role → /purchases."""

from __future__ import annotations

import asyncio
import re

from tests.harness import WEBHOOK_SECRET
from tests.shop import BUYER, FRIEND, STRANGER, Shop, checkout_url, text_of


async def test_buy_pay_get_role(shop: Shop) -> None:
    """Admin adds a role product; a member buys, pays, gets role, receipt and /purchases."""
    await shop.add_product("VIP", "4.99")
    session_id = await shop.buy(BUYER, "VIP")
    session = shop.stripe.sessions[session_id]
    assert session["mode"] == "payment"
    assert (session["amount_total"], session["currency"]) == (499, "usd")
    install_id, order_id = session["client_reference_id"].split("-")
    assert install_id == shop.bot.scalar("SELECT value FROM meta WHERE key='install_id'")
    assert session["metadata"] == {
        "install_id": install_id,
        "order_id": order_id,
        "guild_id": str(shop.guild_id),
        "user_id": str(BUYER),
        "recipient_id": str(BUYER),
        "product_id": session["metadata"]["product_id"],
    }
    assert 1800 <= session["expires_at"] - shop.stripe.now() <= 1920
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(BUYER), "role granted")
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt DM")
    assert "claim code" in str(shop.dms_to(BUYER)[0])
    reply = await shop.command(BUYER, "purchases")
    assert "**VIP** — delivered · yours for good" in text_of(reply)


async def test_duplicate_and_racing_events_grant_once(shop: Shop) -> None:
    """The same event twice, and two events for one order at once → one grant, one receipt."""
    await shop.add_product()
    session_id = await shop.buy()
    event = shop.stripe.complete_checkout(session_id)
    racing = shop.stripe.make_event(
        "checkout.session.async_payment_succeeded", event["data"]["object"]
    )
    results = await asyncio.gather(
        shop.sender.send(event), shop.sender.send(event), shop.sender.send(racing)
    )
    assert [status for status, _ in results] == [200, 200, 200]
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt DM")
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='received'") == 0,
        "events processed",
    )
    await shop.wait(
        lambda: (
            shop.bot.scalar(
                "SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending','running')"
            )
            == 0
        ),
        "queue drained",
    )
    assert len(shop.role_adds(BUYER)) == 1
    assert len(shop.dms_to(BUYER)) == 1
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1
    assert shop.bot.scalar("SELECT COUNT(*) FROM webhook_events") == 2


async def test_bad_webhooks_change_nothing(shop: Shop) -> None:
    """Bad/missing signature, stale timestamp, bad JSON, oversized body → 4xx, no change."""
    from tests.fakes.stripe import sign_payload

    await shop.add_product()
    session_id = await shop.buy()
    event = shop.stripe.complete_checkout(session_id)
    body = __import__("json").dumps(event).encode()
    good = sign_payload(body, WEBHOOK_SECRET)
    cases = [
        (body, {"Stripe-Signature": sign_payload(body, "whsec_wrong")}),
        (body, {}),
        (
            body,
            {
                "Stripe-Signature": sign_payload(
                    body, WEBHOOK_SECRET, timestamp=shop.stripe.now() - 3600
                )
            },
        ),
        (body + b" tampered", {"Stripe-Signature": good}),
        (b"{not json", {"Stripe-Signature": sign_payload(b"{not json", WEBHOOK_SECRET)}),
        (
            b'{"id": "evt_x"}',
            {"Stripe-Signature": sign_payload(b'{"id": "evt_x"}', WEBHOOK_SECRET)},
        ),
        (b"x" * (1024 * 1024 + 10), {"Stripe-Signature": good}),
    ]
    for payload, headers in cases:
        status, _ = await shop.sender.send_raw(
            payload, {"Content-Type": "application/json", **headers}
        )
        assert 400 <= status < 500, (status, payload[:40], headers)
    assert shop.bot.scalar("SELECT COUNT(*) FROM webhook_events") == 0
    assert shop.bot.scalar("SELECT status FROM orders") == "pending"
    status, _ = await shop.sender.send(event)
    assert status == 200
    await shop.wait(lambda: shop.has_role(BUYER), "valid event still works after the bad ones")


async def test_buyer_not_in_guild_gets_role_on_join_and_rejoin(shop: Shop) -> None:
    """Paid while away → job waits; joins (after screening) → role; rejoins → role again."""
    await shop.add_product()
    await shop.pay_while_away(STRANGER)
    assert not shop.has_role(STRANGER)
    shop.discord.add_member(shop.guild_id, STRANGER, pending=True, dispatch=True)
    shop.discord.add_member(shop.guild_id, FRIEND, dispatch=True)  # a marker event after it
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM pending_screening") == 1, "screening recorded"
    )
    assert not shop.has_role(STRANGER)
    shop.discord.update_member(shop.guild_id, STRANGER, pending=False)
    await shop.wait(lambda: shop.has_role(STRANGER), "role after screening")
    shop.discord.remove_member(shop.guild_id, STRANGER)
    shop.discord.add_member(shop.guild_id, STRANGER, dispatch=True)
    await shop.wait(lambda: shop.has_role(STRANGER), "role re-granted on rejoin")
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1


async def test_role_hierarchy_refused_then_failed_with_reason(shop: Shop) -> None:
    """A role above the bot is refused at add; a later hierarchy change fails the job clearly."""
    reply = await shop.admin(
        "shop product add", {"name": "Mod", "price": "9", "role": shop.high_role}
    )
    assert "above the bot's highest role" in text_of(reply)
    assert shop.bot.scalar("SELECT COUNT(*) FROM products") == 0
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
    reason = shop.bot.scalar("SELECT last_error FROM delivery_jobs WHERE kind='grant_role'")
    assert "above the bot's highest role" in reason
    queue = await shop.admin("shop queue", {"status": "failed"})
    assert "above the bot's highest role" in text_of(queue)
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt mentions the problem")
    assert "could not be completed" in str(shop.dms_to(BUYER)[0])
    failed = [line for line in shop.bot.log_text().splitlines() if "(grant_role)" in line]
    assert any("WARNING" in line and "above the bot's highest role" in line
               and "then `/shop retry" in line for line in failed), failed  # fmt: skip


async def test_operator_can_follow_the_log(shop: Shop) -> None:
    """Issue 10: at INFO, one line at ready, one per business event, no Stripe SDK lines."""
    await shop.add_product()
    await shop.bot.stop()
    before = len(shop.bot.log_text())
    shop.bot.env["SHOPBOT_LOG__LEVEL"] = "INFO"
    await shop.bot.start()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.has_role(BUYER), "role granted")
    await shop.wait(lambda: "receipt done" in shop.bot.log_text(), "receipt logged")
    log = shop.bot.log_text()[before:]
    assert "ready as shopbot in 1 server, 1 product, web on :" in log
    assert "stripe checkout.session.completed applied to order #1" in log
    assert f"role {shop.vip_role} given to user {BUYER} in guild {shop.guild_id} (order #1)" in log
    assert "stripe:" not in log and " DEBUG " not in log


async def test_non_admin_is_refused_server_side(shop: Shop) -> None:
    """A member without Manage Server invoking /shop product add is refused; nothing is created."""
    reply = await shop.admin(
        "shop product add", {"name": "Free", "price": "1"}, user=BUYER, permissions=0
    )
    assert "Only server admins" in text_of(reply)
    assert shop.bot.scalar("SELECT COUNT(*) FROM products") == 0


async def test_bad_product_input_is_refused(shop: Shop) -> None:
    """Invalid prices, duplicate names and contradictory options get a clear error and no write."""
    await shop.add_product("VIP", "4.99")
    for options, expected in [
        ({"name": "A", "price": "abc"}, "not a price"),
        ({"name": "A", "price": "-1"}, "more than zero"),
        ({"name": "A", "price": "4.999"}, "decimal places"),
        ({"name": "A", "price": "99999999"}, "too large"),
        ({"name": "vip", "price": "1"}, "already exists"),
        ({"name": "A", "price": "1", "kind": "subscription"}, "interval"),
        ({"name": "A", "price": "1", "kind": "timed"}, "duration_days"),
        ({"name": "A", "price": "1", "currency": "dollars"}, "currency"),
    ]:
        reply = await shop.admin("shop product add", options)
        assert expected in text_of(reply), (options, text_of(reply))
    assert shop.bot.scalar("SELECT COUNT(*) FROM products") == 1


async def test_buy_menu_without_product(shop: Shop) -> None:
    """/buy with no product shows a select menu; choosing from it gives an ephemeral link."""
    await shop.add_product("VIP", "4.99")
    inter = await shop.discord.invoke_command(shop.guild_id, BUYER, "buy", {}, permissions="0")
    menu = await inter.wait_message()
    assert inter.is_ephemeral()
    select = menu["components"][0]["components"][0]
    product_id = select["options"][0]["value"]
    click = await shop.discord.click_component(
        shop.guild_id, BUYER, select["custom_id"], message_id=int(menu["id"]), values=[product_id]
    )
    message = await click.wait_message(predicate=lambda m: checkout_url(m) is not None)
    assert click.is_ephemeral()
    assert checkout_url(message)


async def test_gift_menu_keeps_recipient(shop: Shop) -> None:
    """/buy gift_to without a product: the menu's choice is a gift for the recipient, who gets
    the role and a DM; the buyer only the receipt. Nobody else can use the buyer's menu."""
    await shop.add_product("VIP", "4.99")
    inter = await shop.discord.invoke_command(
        shop.guild_id, BUYER, "buy", {"gift_to": FRIEND}, permissions="0"
    )
    menu = await inter.wait_message()
    assert inter.is_ephemeral()
    select = menu["components"][0]["components"][0]
    product_id = select["options"][0]["value"]
    click = await shop.discord.click_component(
        shop.guild_id, BUYER, select["custom_id"], message_id=int(menu["id"]), values=[product_id]
    )
    message = await click.wait_message(predicate=lambda m: checkout_url(m) is not None)
    assert click.is_ephemeral() and f"<@{FRIEND}>" in text_of(message)
    rows = shop.bot.query("SELECT buyer_id, recipient_id FROM orders")
    assert [tuple(r) for r in rows] == [(BUYER, FRIEND)]
    intruder = await shop.discord.click_component(
        shop.guild_id,
        STRANGER,
        select["custom_id"],
        message_id=int(menu["id"]),
        values=[product_id],
    )
    refused = await intruder.wait_message()
    assert intruder.is_ephemeral() and "someone else's" in text_of(refused)
    assert shop.bot.scalar("SELECT COUNT(*) FROM orders") == 1
    session_id = (checkout_url(message) or "").rstrip("/").split("/")[-1]
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(FRIEND), "the recipient's role")
    await shop.wait(lambda: shop.dms_to(FRIEND) and shop.dms_to(BUYER), "both told")
    assert not shop.has_role(BUYER)
    assert [r[0] for r in shop.bot.query("SELECT user_id FROM entitlements")] == [FRIEND]
    assert "bought you **VIP**" in str(shop.dms_to(FRIEND))


async def test_claim_code_refused_for_someone_else(shop: Shop) -> None:
    """The buyer's claim code cannot be taken by another member (who is told no such code
    exists here)."""
    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.bot.scalar("SELECT claim_code FROM orders"), "claim code")
    code = shop.bot.scalar("SELECT claim_code FROM orders")
    reply = await shop.command(FRIEND, "claim", {"code": code})
    assert "No order here has that claim code" in text_of(reply)
    reply = await shop.command(BUYER, "claim", {"code": code})
    assert "already yours" in text_of(reply)


async def test_buy_and_claim_cooldowns(shop: Shop) -> None:
    """Past its per-member cooldown /buy or /claim answers, ephemerally, how many seconds to
    wait and changes nothing; another member is not slowed down."""
    await shop.add_product("VIP", "4.99")
    for _ in range(3):
        await shop.buy(BUYER)
    reply = await shop.command(BUYER, "buy", {"product": "VIP"})
    wait = re.search(r"`/buy` too fast; try again in (\d+) seconds?", text_of(reply))
    assert wait and 1 <= int(wait[1]) <= 30, text_of(reply)
    assert checkout_url(reply) is None
    assert shop.bot.scalar("SELECT COUNT(*) FROM orders") == 1  # the open link was reused
    await shop.buy(FRIEND)
    for _ in range(5):
        reply = await shop.command(BUYER, "claim")
        assert "Nothing is waiting" in text_of(reply)
    reply = await shop.command(BUYER, "claim", {"code": "ABCD-EFGH-JKLM-NPQR"})
    wait = re.search(r"`/claim` too fast; try again in (\d+) seconds?", text_of(reply))
    assert wait and 1 <= int(wait[1]) <= 60, text_of(reply)
    assert shop.bot.scalar("SELECT COUNT(*) FROM claim_attempts") == 0  # the code was not tried
    reply = await shop.command(FRIEND, "claim")
    assert "Nothing is waiting" in text_of(reply)
