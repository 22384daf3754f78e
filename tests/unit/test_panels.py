"""Shop panels with the real store and services: what is posted, how edits are planned and
collapse, a panel deleted by hand, and every refused input (bot/panels.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.errors import ShopError
from bot.panels import MAX_PRODUCTS, buy_custom_id, parse_message_ref
from bot.shop import ProductDraft
from cogs.buyer import BuyButton
from tests.unit.world import ADMIN, GUILD, ROLE, World, add_product

CHANNEL = 4242


async def post(world: World, products: str | None = None, title: str | None = None) -> Any:
    return await world.services.panels.post(GUILD, ADMIN, CHANNEL, products, title)


def body_of(world: World, message_id: int) -> dict[str, Any]:
    return world.discord.messages[message_id][1]


def texts(body: dict[str, Any]) -> str:
    parts = [body["content"]]
    for embed in body["embeds"]:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


async def edit_jobs(world: World) -> list[Any]:
    return world.rows("SELECT status, attempts FROM delivery_jobs WHERE kind='edit_panel'")


async def test_panel_body_has_an_embed_and_buy_button_per_product(world: World) -> None:
    """Name, description, image, price, trial and role per product; buttons `shop:buy:<id>` that
    cogs/buyer.py's DynamicItem template matches; no mention can ping."""
    vip = await add_product(world, "VIP", description="Lounge", image_url="https://x.test/a.png")
    club = (
        await world.shop.add_product(
            GUILD,
            ADMIN,
            ProductDraft(
                name="Club", price="2", kind="subscription", interval="month", trial_days=7
            ),
        )
    ).id
    panel = await post(world, title="Get in")
    body = body_of(world, panel.message_id)
    assert body["content"] == "**Get in**" and body["allowed_mentions"] == {"parse": []}
    first, second = body["embeds"]
    assert first["title"] == "Club" and "description" not in first and "image" not in first
    assert "2.00 USD / month" in texts({"content": "", "embeds": [first]})
    assert "7 days" in texts({"content": "", "embeds": [first]})
    assert second["title"] == "VIP" and second["description"] == "Lounge"
    assert second["image"] == {"url": "https://x.test/a.png"}
    assert f"<@&{ROLE}>" in texts({"content": "", "embeds": [second]})
    buttons = [b for row in body["components"] for b in row["components"]]
    assert [b["custom_id"] for b in buttons] == [buy_custom_id(club), buy_custom_id(vip)]
    pattern = BuyButton.__discord_ui_compiled_template__  # type: ignore[attr-defined]
    assert all(re.fullmatch(pattern, b["custom_id"]) for b in buttons)
    assert panel.product_ids == (club, vip)


async def test_panel_edits_collapse_into_one_job(world: World) -> None:
    """Three changes while the edit is pending → one job, one PATCH, showing the last state."""
    await add_product(world, "VIP")
    panel = await post(world)
    await world.shop.edit_product(GUILD, ADMIN, "VIP", price="5.00")
    await world.shop.edit_product(GUILD, ADMIN, "VIP", description="New text")
    await world.shop.edit_product(GUILD, ADMIN, "VIP", price="6.00")
    assert await edit_jobs(world) == [("pending", 0)]
    await world.run_jobs()
    assert world.discord.edits == [panel.message_id]
    shown = texts(body_of(world, panel.message_id))
    assert "6.00 USD" in shown and "New text" in shown
    assert await edit_jobs(world) == [("completed", 1)]
    await world.shop.edit_product(GUILD, ADMIN, "VIP", stock=0)
    await world.run_jobs()
    assert "Sold out" in texts(body_of(world, panel.message_id))
    assert [status for status, _ in await edit_jobs(world)] == ["completed", "completed"]


async def test_panel_edit_sent_again_when_product_changes_during_it(world: World) -> None:
    """A change committed while the PATCH is on its way is not lost: the job edits once more."""
    await add_product(world, "VIP")
    panel = await post(world)
    await world.shop.edit_product(GUILD, ADMIN, "VIP", price="5.00")
    original = world.discord.edit_message
    changed = []

    async def edit_and_race(channel_id: int, message_id: int, body: dict[str, Any]) -> None:
        await original(channel_id, message_id, body)
        if not changed:  # an admin edits while the first PATCH is in flight
            changed.append(True)
            await world.shop.edit_product(GUILD, ADMIN, "VIP", price="7.00")

    world.discord.edit_message = edit_and_race  # type: ignore[method-assign]
    await world.run_jobs()
    assert world.discord.edits == [panel.message_id, panel.message_id]
    assert "7.00 USD" in texts(body_of(world, panel.message_id))


async def test_panel_deleted_by_hand_is_forgotten(world: World) -> None:
    """Unknown Message at the edit: the panel is forgotten and the job completes (no retry)."""
    await add_product(world, "VIP")
    panel = await post(world)
    del world.discord.messages[panel.message_id]  # someone deleted it in the client
    await world.shop.remove_product(GUILD, ADMIN, "VIP")
    await world.run_jobs()
    assert world.rows("SELECT COUNT(*) FROM shop_panels") == [(0,)]
    assert await edit_jobs(world) == [("completed", 1)]
    assert world.rows("SELECT kind FROM audit_log WHERE kind LIKE 'panel.%' ORDER BY id") == [
        ("panel.post",),
        ("panel.forgotten",),
    ]


async def test_removed_product_leaves_the_panel(world: World) -> None:
    """Removing every product of a panel leaves a message saying nothing is for sale, no
    buttons; removing the panel deletes its message and a second remove is refused."""
    await add_product(world, "VIP")
    panel = await post(world)
    await world.shop.remove_product(GUILD, ADMIN, "VIP")
    await world.run_jobs()
    body = body_of(world, panel.message_id)
    assert body["components"] == [] and "Nothing is for sale" in texts(body)
    link = f"https://discord.com/channels/{GUILD}/{CHANNEL}/{panel.message_id}"
    await world.services.panels.remove(GUILD, ADMIN, link)
    assert panel.message_id not in world.discord.messages
    with pytest.raises(ShopError, match="not a shop panel"):
        await world.services.panels.remove(GUILD, ADMIN, str(panel.message_id))


@pytest.mark.parametrize(
    ("products", "title", "expected"),
    [
        ("VIP, Nope", None, "no product called `Nope`"),
        ("Paused", None, "not for sale"),
        (" , ,", None, "at least one product"),
        (None, "x" * 101, "at most 100 characters"),
    ],
)
async def test_panel_post_refuses_bad_input(
    world: World, products: str | None, title: str | None, expected: str
) -> None:
    """Each bad input gets a clear message; nothing is posted or stored."""
    await add_product(world, "VIP")
    await add_product(world, "Paused")
    await world.shop.edit_product(GUILD, ADMIN, "Paused", active=False)
    with pytest.raises(ShopError, match=re.escape(expected)):
        await post(world, products, title)
    assert world.discord.messages == {}
    assert world.rows("SELECT COUNT(*) FROM shop_panels") == [(0,)]


async def test_panel_post_refuses_more_than_fit(world: World) -> None:
    """Discord allows 10 embeds a message: an eleventh product is refused, ten are fine."""
    for n in range(MAX_PRODUCTS + 1):
        await add_product(world, f"P{n:02}")
    with pytest.raises(ShopError, match="at most 10 products"):
        await post(world)
    names = ", ".join(f"P{n:02}" for n in range(MAX_PRODUCTS))
    panel = await post(world, names)
    body = body_of(world, panel.message_id)
    assert len(body["embeds"]) == 10
    assert [len(row["components"]) for row in body["components"]] == [5, 5]


async def test_panel_post_without_products_is_refused(world: World) -> None:
    with pytest.raises(ShopError, match="Nothing is for sale"):
        await post(world)


def test_message_refs() -> None:
    """Links (discord.com, ptb, canary) and ids are accepted; anything else is refused."""
    assert parse_message_ref("https://discord.com/channels/1/2/123456789012345678") == (
        1,
        123456789012345678,
    )
    assert parse_message_ref("<https://ptb.discord.com/channels/1/2/3>") == (1, 3)
    assert parse_message_ref("123456789012345678") == (None, 123456789012345678)
    for bad in ("hello", "https://evil.test/channels/1/2/3", "1" * 21, "-5"):
        with pytest.raises(ShopError, match="message link"):
            parse_message_ref(bad)


async def test_panel_of_another_guild_cannot_be_removed(world: World) -> None:
    await add_product(world, "VIP")
    panel = await post(world)
    with pytest.raises(ShopError, match="not a shop panel"):
        await world.services.panels.remove(GUILD + 1, ADMIN, str(panel.message_id))
    link = f"https://discord.com/channels/{GUILD + 1}/{CHANNEL}/{panel.message_id}"
    with pytest.raises(ShopError, match="not a shop panel"):
        await world.services.panels.remove(GUILD, ADMIN, link)
    assert panel.message_id in world.discord.messages


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.test/a.png", "https://", "a b"])
async def test_product_image_url_must_be_a_web_address(world: World, url: str) -> None:
    with pytest.raises(ShopError, match="image_url"):
        await add_product(world, "VIP", image_url=url)
    assert world.rows("SELECT COUNT(*) FROM products") == [(0,)]


async def test_product_image_url_edit_and_clear(world: World) -> None:
    await add_product(world, "VIP")
    edited = await world.shop.edit_product(GUILD, ADMIN, "VIP", image_url="https://x.test/b.png")
    assert edited.image_url == "https://x.test/b.png"
    cleared = await world.shop.edit_product(GUILD, ADMIN, "VIP", image_url="none")
    assert cleared.image_url is None
