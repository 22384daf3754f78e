"""Access lifecycle end to end: expiry, subscriptions, refunds, disputes, shared and hand roles."""

from __future__ import annotations

from typing import Any

from tests.shop import ADMIN, BUYER, FRIEND, Shop, text_of

DAY = 86400


async def deliver(shop: Shop, event: dict[str, Any]) -> None:
    status, body = await shop.sender.send(event)
    assert status == 200, body


async def settled(shop: Shop) -> None:
    """Every stored event processed and every job finished."""
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='received'") == 0,
        "events processed",
    )
    await shop.wait(
        lambda: (
            shop.bot.scalar(
                "SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending','running')"
                " AND waiting_for_member=0"
            )
            == 0
        ),
        "jobs done",
    )


async def restart_later(shop: Shop, seconds: int) -> None:
    """Restart the process with its clock moved forward (the schedule lives in the DB)."""
    await shop.bot.stop()
    shop.bot.env["SHOPBOT_CLOCK_OFFSET_SECONDS"] = str(seconds)
    await shop.bot.start()


async def test_timed_access_expires(shop: Shop) -> None:
    """Timed product: role on purchase; after duration_days the role goes, with a DM."""
    await shop.add_product("Pass", "2", kind="timed", duration_days=7)
    await shop.pay(await shop.buy(product="Pass"))
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await restart_later(shop, 8 * DAY)
    await shop.wait(lambda: not shop.has_role(BUYER), "role removed at expiry")
    assert shop.bot.scalar("SELECT status FROM entitlements") == "expired"
    await shop.wait(lambda: any("ended" in str(dm) for dm in shop.dms_to(BUYER)), "DM")


async def test_subscription_renews_survives_failure_and_ends(shop: Shop) -> None:
    """Renewal moves the end date; a failed renewal keeps access; deletion removes the role."""
    await shop.add_product("Club", "5", kind="subscription", interval="month")
    session_id = await shop.buy(product="Club")
    assert shop.stripe.sessions[session_id]["mode"] == "subscription"
    await shop.pay(session_id)
    for event in shop.stripe.events_of_type("invoice.paid"):
        await deliver(shop, event)
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await settled(shop)
    first_end = shop.bot.scalar("SELECT ends_at FROM entitlements")
    sub_id = shop.stripe.sessions[session_id]["subscription"]
    reply = await shop.command(BUYER, "buy", {"product": "Club"})
    assert "already active" in text_of(reply)
    await deliver(shop, shop.stripe.renew_subscription(sub_id))
    await shop.wait(
        lambda: shop.bot.scalar("SELECT ends_at FROM entitlements") > first_end, "end date moved"
    )
    await deliver(shop, shop.stripe.fail_invoice(sub_id))
    await shop.wait(
        lambda: any("payment" in str(dm).lower() for dm in shop.dms_to(BUYER)), "payment failed DM"
    )
    await settled(shop)
    assert shop.has_role(BUYER), "access is kept through the grace period"
    manage = await shop.command(BUYER, "manage")
    assert "billing.stripe.com" in str(manage["components"])
    await deliver(shop, shop.stripe.cancel_subscription(sub_id))
    await shop.wait(lambda: not shop.has_role(BUYER), "role removed when the subscription ends")


async def test_refund_and_dispute_remove_role_partial_does_not(shop: Shop) -> None:
    """/shop refund (full) and a dispute each remove the role; a partial refund does not."""
    await shop.add_product()
    await shop.pay(await shop.buy(BUYER))
    await shop.pay(await shop.buy(FRIEND))
    await shop.wait(lambda: shop.has_role(BUYER) and shop.has_role(FRIEND), "roles")
    friend_pi = shop.bot.scalar(
        "SELECT stripe_payment_intent_id FROM orders WHERE buyer_id=?", (FRIEND,)
    )
    await deliver(shop, shop.stripe.refund(friend_pi, amount=100))
    await settled(shop)
    assert shop.has_role(FRIEND), "a partial refund keeps access"
    order_id = shop.bot.scalar("SELECT id FROM orders WHERE buyer_id=?", (BUYER,))
    reply = await shop.admin("shop refund", {"order": str(order_id), "reason": "asked"})
    assert "sent to Stripe" in text_of(reply)
    await deliver(shop, shop.stripe.events_of_type("charge.refunded")[-1])
    await shop.wait(lambda: not shop.has_role(BUYER), "refund removes the role")
    assert shop.bot.scalar("SELECT status FROM orders WHERE buyer_id=?", (BUYER,)) == "refunded"
    again = await shop.admin("shop refund", {"order": str(order_id)})
    assert "already refunded" in text_of(again)
    await deliver(shop, shop.stripe.dispute(friend_pi))
    await shop.wait(lambda: not shop.has_role(FRIEND), "dispute removes the role")
    assert shop.bot.scalar("SELECT status FROM orders WHERE buyer_id=?", (FRIEND,)) == "disputed"


async def test_shop_refund_of_a_subscription_refunds_cancels_and_removes_role(
    shop: Shop,
) -> None:
    """/shop refund on a subscription order: the latest invoice's payment is refunded, the
    subscription canceled; Stripe's webhooks (mapped by InvoicePayment) remove the role."""
    await shop.add_product("Club", "5", kind="subscription", interval="month")
    session_id = await shop.buy(product="Club")
    await shop.pay(session_id)
    for event in shop.stripe.events_of_type("invoice.paid"):
        await deliver(shop, event)
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await settled(shop)
    sub_id = shop.stripe.sessions[session_id]["subscription"]
    order_id = shop.bot.scalar("SELECT id FROM orders WHERE buyer_id=?", (BUYER,))
    reply = await shop.admin("shop refund", {"order": str(order_id), "reason": "asked"})
    assert "sent to Stripe; its subscription is canceled" in text_of(reply)
    assert shop.stripe.subscriptions[sub_id]["status"] == "canceled"
    await deliver(shop, shop.stripe.events_of_type("customer.subscription.deleted")[-1])
    await deliver(shop, shop.stripe.events_of_type("charge.refunded")[-1])
    await shop.wait(lambda: not shop.has_role(BUYER), "refund removes the role")
    await settled(shop)
    assert shop.bot.scalar("SELECT status FROM orders") == "refunded"
    assert shop.bot.scalar("SELECT end_reason FROM entitlements") == "refund"
    again = await shop.admin("shop refund", {"order": str(order_id), "reason": "other"})
    assert "already refunded" in text_of(again)


async def test_shared_role_kept_while_another_product_holds_it(shop: Shop) -> None:
    """Two products give the same role: refunding one keeps the role."""
    await shop.add_product("VIP", "4")
    await shop.add_product("VIP Plus", "9")
    await shop.pay(await shop.buy(product="VIP"))
    await shop.pay(await shop.buy(product="VIP Plus"))
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await settled(shop)
    pi = shop.bot.scalar("SELECT stripe_payment_intent_id FROM orders ORDER BY id LIMIT 1")
    await deliver(shop, shop.stripe.refund(pi))
    await settled(shop)
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements WHERE status='active'") == 1
    assert shop.has_role(BUYER)


async def test_hand_given_role_survives_expiry_refund_and_reconcile(shop: Shop) -> None:
    """A member given the role by hand keeps it through a refund, expiry and reconciliation."""
    shop.discord.update_member(shop.guild_id, FRIEND, roles=[shop.vip_role], dispatch=False)
    await shop.add_product("VIP", "4")
    await shop.pay(await shop.buy(FRIEND, product="VIP"))
    await settled(shop)
    pi = shop.bot.scalar("SELECT stripe_payment_intent_id FROM orders")
    await deliver(shop, shop.stripe.refund(pi))
    await settled(shop)
    assert shop.bot.scalar("SELECT status FROM orders") == "refunded"
    assert shop.has_role(FRIEND), "the admin's role stays through a refund"
    await shop.add_product("Pass", "2", kind="timed", duration_days=3)
    await shop.pay(await shop.buy(FRIEND, product="Pass"))
    await settled(shop)
    await restart_later(shop, 4 * DAY)
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM entitlements WHERE status='active'") == 0,
        "expired",
    )
    await settled(shop)
    assert shop.has_role(FRIEND), "the admin's role stays through expiry and reconciliation"
    assert not [op for op in shop.discord.role_ops if op[0] == "remove"]


async def test_manual_grant_and_revoke(shop: Shop) -> None:
    """/shop grant gives access without payment; /shop revoke takes it (and the role) away."""
    await shop.add_product()
    reply = await shop.admin("shop grant", {"member": FRIEND, "product": "VIP", "days": 30})
    assert "Gave" in text_of(reply)
    await shop.wait(lambda: shop.has_role(FRIEND), "granted role")
    reply = await shop.admin("shop revoke", {"member": FRIEND, "product": "VIP"})
    assert "Revoked" in text_of(reply)
    await shop.wait(lambda: not shop.has_role(FRIEND), "role revoked")
    missing = await shop.admin("shop revoke", {"member": FRIEND, "product": "VIP"})
    assert "no active" in text_of(missing)
    refused = await shop.admin(
        "shop grant", {"member": FRIEND, "product": "VIP"}, user=BUYER, permissions=0
    )
    assert "Only server admins" in text_of(refused)
    assert ADMIN != FRIEND


def manage_dm(shop: Shop) -> dict[str, Any] | None:
    """The buyer's newest DM carrying the failed-renewal Manage button."""
    custom_id = f"shop:manage:{shop.guild_id}"
    found = [m for user, m in shop.dms_to(BUYER) if custom_id in str(m.get("components"))]
    return found[-1] if found else None


async def test_manage_button_on_failed_renewal_dm_opens_the_buyers_portal(shop: Shop) -> None:
    """The failed-renewal DM's Manage button, pressed in that DM: an ephemeral reply with a
    billing portal link for the presser's own Stripe customer; a member with no
    subscriptions pressing it is told so clearly, and no portal session is made for them."""
    await shop.add_product("Club", "5", kind="subscription", interval="month")
    session_id = await shop.buy(product="Club")
    await shop.pay(session_id)
    for event in shop.stripe.events_of_type("invoice.paid"):
        await deliver(shop, event)
    await shop.wait(lambda: shop.has_role(BUYER), "role")
    await settled(shop)
    sub_id = shop.stripe.sessions[session_id]["subscription"]
    customer = shop.stripe.sessions[session_id]["customer"]
    await deliver(shop, shop.stripe.fail_invoice(sub_id))
    dm = await shop.wait(lambda: manage_dm(shop), "the failed-renewal DM with its button")
    custom_id = f"shop:manage:{shop.guild_id}"

    pressed = await shop.discord.click_component(None, BUYER, custom_id, message_id=dm["id"])
    reply = await pressed.wait_message(predicate=lambda m: "billing" in str(m.get("components")))
    assert pressed.is_ephemeral(), f"the Manage button answered publicly: {reply}"
    assert "Update your card or cancel here" in text_of(reply)
    (session,) = shop.stripe.portal_sessions.values()
    assert session["customer"] == customer
    assert session["url"] in str(reply["components"])

    refused = await shop.discord.click_component(None, FRIEND, custom_id, message_id=dm["id"])
    message = await refused.wait_message(predicate=lambda m: bool(text_of(m).strip()))
    assert refused.is_ephemeral()
    assert "You have no subscriptions here to manage" in text_of(message)
    assert len(shop.stripe.portal_sessions) == 1
