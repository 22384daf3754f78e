"""The admin surface reads well: warnings, edits, paused products, queue and why as sentences."""

from __future__ import annotations

import re

from tests.shop import BUYER, Shop, text_of


async def test_readable_admin_surface_end_to_end(shop: Shop) -> None:
    """`product add` without a role warns; `product edit` sets role, image and promotion
    codes and pauses; admins' autocomplete lists the paused product, buyers' does not;
    /shop queue and /shop why are sentences with <t:…:R> times and the Stripe event id."""
    reply = text_of(await shop.admin("shop product add", {"name": "Ghost", "price": "1.00"}))
    assert "gives buyers nothing yet" in reply, reply
    await shop.add_product("VIP", "4.99")
    assert "nothing yet" not in text_of(await shop.admin("shop product list"))

    product_id = shop.bot.scalar("SELECT id FROM products WHERE name='Ghost'")
    edited = await shop.admin(
        "shop product edit",
        {
            "product": str(product_id),
            "role": shop.vip_role,
            "image_url": "https://img.example/ghost.png",
            "allow_promotion_codes": True,
            "active": False,
        },
    )
    text = text_of(edited)
    assert "paused, promotion codes accepted" in text and f"<@&{shop.vip_role}>" in text, text
    row = shop.bot.scalar(
        f"SELECT image_url || '|' || allow_promotion_codes FROM products WHERE id={product_id}"
    )
    assert row == "https://img.example/ghost.png|1"
    roles = shop.bot.scalar(
        f"SELECT role_id FROM actions WHERE product_id={product_id} AND removed=0"
    )
    assert roles == shop.vip_role
    bad = text_of(
        await shop.admin("shop product edit", {"product": str(product_id), "image_url": "ftp://x"})
    )
    assert (
        "https://" in bad
        and shop.bot.scalar(f"SELECT image_url FROM products WHERE id={product_id}")
        == "https://img.example/ghost.png"
    )

    admin = await shop.discord.autocomplete(
        shop.guild_id, 1001, "shop product edit", {"product": "gh"}, permissions="32"
    )
    assert [c["name"] for c in await admin.wait_choices()] == ["Ghost — 1.00 USD (paused)"]
    buyer = await shop.discord.autocomplete(shop.guild_id, BUYER, "buy", {"product": "gh"})
    assert await buyer.wait_choices() == []

    session_id = await shop.buy(BUYER, "VIP")
    event = await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(BUYER), "role granted")
    queue = text_of(await shop.admin("shop queue", {"status": "completed"}))
    assert re.search(r"Give a role for <@2002> was done <t:\d+:R>", queue), queue
    assert f"(Stripe event `{event['id']}`)" in queue, queue
    why = text_of(await shop.admin("shop why", {"member": BUYER}))
    assert re.search(r"<t:\d+:R> Order #\d+ was paid \(4\.99 USD\)", why), why
    assert f"Stripe event `{event['id']}`" in why, why
    assert "order.paid" not in why and "entitlement.grant" not in why
