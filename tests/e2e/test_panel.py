"""Shop panels end to end: /shop panel post → Buy button → checkout → paid → role; restarts,
edits in place, refusals, removal, and the admin check (SPEC §4 `/shop panel`)."""

from __future__ import annotations

from typing import Any

from tests.harness import MANAGE_GUILD
from tests.shop import BUYER, FRIEND, STRANGER, Shop, buy_buttons, checkout_url, text_of

IMAGE = "https://cdn.example.com/vip.png"


def session_of(message: dict[str, Any]) -> str:
    url = checkout_url(message)
    assert url, f"no checkout link in {message}"
    return url.rstrip("/").split("/")[-1]


def no_violations(shop: Shop) -> None:
    assert shop.discord.violations == [], shop.discord.violations


async def test_panel_button_buys_like_buy(shop: Shop) -> None:
    """The panel shows each product (name, description, image, price, role) with a Buy button
    `shop:buy:<id>`; a member's press gives the same ephemeral checkout as /buy; paying gives
    the role."""
    await shop.add_product("VIP", "4.99", description="The VIP lounge", image_url=IMAGE)
    await shop.add_product(
        "Club", "2.50", role=None, kind="subscription", interval="month", trial_days=7
    )
    vip, club = shop.product_id("VIP"), shop.product_id("Club")
    panel = await shop.post_panel(title="Get access")
    assert panel["content"] == "**Get access**"
    by_title = {e["title"]: e for e in panel["embeds"]}
    assert set(by_title) == {"VIP", "Club"}
    assert by_title["VIP"]["description"] == "The VIP lounge"
    assert by_title["VIP"]["image"]["url"] == IMAGE
    assert "4.99 USD" in text_of({"embeds": [by_title["VIP"]]})
    assert f"<@&{shop.vip_role}>" in text_of({"embeds": [by_title["VIP"]]})
    club_text = text_of({"embeds": [by_title["Club"]]})
    assert "2.50 USD / month" in club_text and "7 days" in club_text
    assert sorted(b["custom_id"] for b in buy_buttons(panel)) == sorted(
        [f"shop:buy:{vip}", f"shop:buy:{club}"]
    )
    assert shop.bot.scalar("SELECT message_id FROM shop_panels") == int(panel["id"])

    answer = await shop.press_buy(vip, BUYER)
    by_command = await shop.command(FRIEND, "buy", {"product": "VIP"})
    assert [e["title"] for e in answer["embeds"]] == [e["title"] for e in by_command["embeds"]]
    session_id = session_of(answer)
    assert shop.stripe.sessions[session_id]["metadata"]["user_id"] == str(BUYER)
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(BUYER), "role from the panel purchase")
    assert not shop.has_role(FRIEND)
    no_violations(shop)


async def test_panel_button_works_after_restart(shop: Shop) -> None:
    """After the process restarts the same panel message's button still starts a checkout."""
    await shop.add_product("VIP", "4.99")
    panel = await shop.post_panel()
    await shop.bot.stop()
    await shop.bot.start()
    answer = await shop.press_buy(shop.product_id("VIP"), BUYER, message_id=panel["id"])
    await shop.pay(session_of(answer))
    await shop.wait(lambda: shop.has_role(BUYER), "role after a restart")
    assert len(shop.discord.channel_messages) == 1, "the panel was posted again"


async def test_panel_updates_when_product_changes(shop: Shop) -> None:
    """A price edit edits the panel message in place (new price shown, same message id); a
    removed product leaves the panel with its embed and button."""
    await shop.add_product("VIP", "4.99")
    await shop.add_product("Gold", "9.00", role=None)
    panel = await shop.post_panel(products="VIP, Gold")
    assert [e["title"] for e in panel["embeds"]] == ["VIP", "Gold"]
    reply = await shop.admin("shop product edit", {"product": "VIP", "price": "6.49"})
    assert "Updated" in text_of(reply), text_of(reply)

    def shows(text: str) -> bool:
        message = shop.message(panel["id"])
        return message is not None and text in text_of(message)

    await shop.wait(lambda: shows("6.49 USD"), "the panel shows the new price")
    assert "4.99 USD" not in text_of(shop.message(panel["id"]) or {})
    await shop.admin("shop product remove", {"product": "Gold"})
    await shop.wait(
        lambda: [e["title"] for e in (shop.message(panel["id"]) or {})["embeds"]] == ["VIP"],
        "the removed product left the panel",
    )
    assert [b["custom_id"] for b in buy_buttons(shop.message(panel["id"]) or {})] == [
        f"shop:buy:{shop.product_id('VIP')}"
    ]
    assert len(shop.discord.channel_messages) == 1, "edited in place, not posted again"
    edits = [r for r in shop.discord.requests if r.method == "PATCH" and panel["id"] in r.path]
    assert edits, "no PATCH of the panel message"
    # The fake sees the PATCH before the job that sent it is marked completed: wait for that.
    await shop.wait(
        lambda: (
            shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status!='completed'") == 0
        ),
        "every panel edit job completed",
    )
    no_violations(shop)


async def test_panel_refusals_are_ephemeral(shop: Shop) -> None:
    """Sold out and paused products: the Buy button answers ephemerally with the reason and
    nothing is created; the panel shows them as sold out / not for sale."""
    await shop.add_product("VIP", "4.99", stock=1)
    await shop.add_product("Gold", "9.00", role=None)
    vip, gold = shop.product_id("VIP"), shop.product_id("Gold")
    panel = await shop.post_panel()
    first = await shop.press_buy(vip, BUYER)
    assert checkout_url(first)
    sold_out = await shop.press_buy(vip, FRIEND)
    assert "sold out" in text_of(sold_out) and checkout_url(sold_out) is None
    await shop.wait(lambda: "Sold out" in text_of(shop.message(panel["id"]) or {}), "sold out")

    await shop.admin("shop product edit", {"product": "Gold", "active": False})
    paused = await shop.press_buy(gold, STRANGER)
    assert "not for sale" in text_of(paused) and checkout_url(paused) is None
    await shop.wait(
        lambda: "Not for sale right now" in text_of(shop.message(panel["id"]) or {}), "paused"
    )
    assert shop.bot.scalar("SELECT COUNT(*) FROM orders") == 1
    no_violations(shop)


async def test_panel_remove_deletes_message(shop: Shop) -> None:
    """`/shop panel remove` with the message link deletes the message and forgets the panel;
    a second remove is refused clearly. A panel deleted by hand is forgotten at its next edit
    (10008), not retried."""
    await shop.add_product("VIP", "4.99")
    panel = await shop.post_panel()
    link = f"https://discord.com/channels/{shop.guild_id}/{shop.channel_id}/{panel['id']}"
    reply = await shop.admin("shop panel remove", {"message": link})
    assert "Removed the shop panel" in text_of(reply), text_of(reply)
    assert shop.message(panel["id"]) is None
    assert shop.bot.scalar("SELECT COUNT(*) FROM shop_panels") == 0
    again = await shop.admin("shop panel remove", {"message": panel["id"]})
    assert "not a shop panel" in text_of(again)

    by_hand = await shop.post_panel()
    shop.discord.delete_message(int(by_hand["id"]))
    await shop.admin("shop product edit", {"product": "VIP", "price": "5.00"})
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM shop_panels") == 0, "panel forgotten"
    )
    await shop.wait(
        lambda: (
            shop.bot.scalar("SELECT status FROM delivery_jobs WHERE kind='edit_panel'")
            == "completed"
        ),
        "the edit job ends",
    )
    assert shop.bot.scalar("SELECT attempts FROM delivery_jobs WHERE kind='edit_panel'") == 1
    no_violations(shop)


async def test_panel_post_refused_for_non_admin(shop: Shop) -> None:
    """Without Manage Server (whatever the server's command permissions say) /shop panel post
    is refused and nothing is posted; too many or unknown products are refused clearly."""
    await shop.add_product("VIP", "4.99")
    channel = {"channel": shop.channel_id}
    refused = await shop.admin("shop panel post", channel, user=BUYER, permissions=0)
    assert "Only server admins" in text_of(refused)
    message = {"message": "1" * 18}
    refused = await shop.admin("shop panel remove", message, user=BUYER, permissions=0)
    assert "Only server admins" in text_of(refused)
    unknown = await shop.admin("shop panel post", {**channel, "products": "VIP, Nope"})
    assert "no product called `Nope`" in text_of(unknown)
    for n in range(10):
        await shop.add_product(f"P{n}", "1.00", role=None)
    too_many = await shop.admin("shop panel post", channel, permissions=MANAGE_GUILD)
    assert "at most 10 products" in text_of(too_many)
    assert shop.discord.channel_messages == []
    assert shop.bot.scalar("SELECT COUNT(*) FROM shop_panels") == 0
