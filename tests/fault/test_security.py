"""Security: forged admin interactions, where checkout links may appear, forged metadata, logs."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.fakes.discord import Perm
from tests.harness import MANAGE_GUILD, WEBHOOK_SECRET
from tests.shop import BUYER, FRIEND, Shop, checkout_url, text_of

CHECKOUT_HOST = "checkout.stripe.com"
SUBCOMMAND, GROUP = 1, 2
# Everything a moderator might have, except the two permissions that make a shop admin.
ALL_BUT_ADMIN = Perm.ALL & ~(Perm.MANAGE_GUILD | Perm.ADMINISTRATOR)


def subcommand_paths(node: dict[str, Any], prefix: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every invocable path under a command ("shop product add", …) with its options."""
    children = [o for o in node.get("options") or [] if o["type"] in (SUBCOMMAND, GROUP)]
    if not children:
        return [(prefix, node.get("options") or [])]
    paths = []
    for child in children:
        paths += subcommand_paths(child, f"{prefix} {child['name']}")
    return paths


async def settle(shop: Shop) -> None:
    await shop.wait(
        lambda: (
            shop.bot.scalar(
                "SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending','running')"
            )
            == 0
            and shop.bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='received'") == 0
        ),
        "bot idle",
    )


def state(shop: Shop) -> dict[str, Any]:
    """Everything an admin command could change."""
    tables = [
        "products",
        "actions",
        "orders",
        "entitlements",
        "delivery_jobs",
        "license_keys",
        "role_grants",
        "audit_log",
    ]
    return {t: [tuple(r) for r in shop.bot.query(f"SELECT * FROM {t} ORDER BY 1")] for t in tables}


async def test_non_admin_is_refused_for_every_shop_subcommand(shop: Shop) -> None:
    """Every /shop subcommand forged by a member without Manage Server is refused, no effect."""
    await shop.add_product()
    await shop.pay(await shop.buy(BUYER))
    await shop.wait(lambda: shop.has_role(BUYER), "a paid order to tamper with")
    await settle(shop)
    order_id = shop.bot.scalar("SELECT id FROM orders")
    product_id = shop.bot.scalar("SELECT id FROM products")
    channel_id = shop.discord.guilds[shop.guild_id].default_channel.id
    synced = next(c for c in shop.discord.synced_commands[shop.guild_id] if c["name"] == "shop")
    assert synced["default_member_permissions"] == str(MANAGE_GUILD)
    paths = subcommand_paths(synced, "shop")
    assert {"shop product add", "shop product edit", "shop product remove"} <= {p for p, _ in paths}

    def value(option: dict[str, Any]) -> Any:
        """A value that would do damage if the command were run (real ids of this shop)."""
        if option.get("choices"):
            return option["choices"][0]["value"]
        name, kind = option["name"], option["type"]
        if kind in (6, 9):
            return FRIEND  # e.g. /shop grant member:<themselves>
        return {
            7: channel_id,
            8: shop.vip_role,
            5: True,
            10: 1.0,
            11: shop.discord.add_attachment("keys.txt", b"KEY-1\n"),
            4: order_id if "order" in name else 30,
        }.get(kind) or {
            "product": str(product_id),
            "order": str(order_id),
            "price": "0.50",
            "keys": "KEY-1",
        }.get(name, "1")

    before = state(shop)
    refused = 0
    for path, options in paths:
        values = {o["name"]: value(o) for o in options if o.get("required")}
        for permissions in (0, ALL_BUT_ADMIN):
            reply = await shop.admin(path, values, user=FRIEND, permissions=permissions)
            assert "Only server admins" in text_of(reply), (path, permissions, text_of(reply))
            refused += 1
    await settle(shop)
    assert state(shop) == before
    assert not shop.stripe.requests_to("/v1/refunds")
    assert not shop.has_role(FRIEND)
    assert refused == 2 * len(paths)


def link_records(shop: Shop) -> list[tuple[str, bool, dict[str, Any]]]:
    """(where, ephemeral, message) for every message state the fake ever recorded."""
    found = []
    for inter in shop.discord.interactions.values():
        for record in inter.responses:
            blob = json.dumps([record["payload"], record["message"]])
            if CHECKOUT_HOST in blob:
                found.append((f"interaction {record['kind']}", record["ephemeral"], record))
    for message in shop.discord.messages.values():
        if CHECKOUT_HOST in json.dumps(message):
            ephemeral = bool(message["flags"] & 64) and "application_id" in message
            found.append(("message", ephemeral, message))
    for user, dm in shop.discord.dms:
        if CHECKOUT_HOST in json.dumps(dm):
            found.append((f"DM to {user}", False, dm))
    for channel, message in shop.discord.channel_messages:
        if CHECKOUT_HOST in json.dumps(message):
            found.append((f"channel {channel}", False, message))
    return found


async def test_checkout_links_only_ever_in_ephemeral_replies(shop: Shop) -> None:
    """Across a whole purchase flow no checkout link lands in a public message, DM or channel."""
    await shop.add_product("VIP", "4.99")
    await shop.add_product("Gold", "9.00", role=None)
    first = await shop.buy(BUYER, "VIP")
    await shop.buy(BUYER, "Gold", gift_to=FRIEND)
    inter = await shop.discord.invoke_command(shop.guild_id, FRIEND, "buy", {}, permissions="0")
    menu = await inter.wait_message()
    select = menu["components"][0]["components"][0]
    click = await shop.discord.click_component(
        shop.guild_id,
        FRIEND,
        select["custom_id"],
        message_id=int(menu["id"]),
        values=[select["options"][0]["value"]],
    )
    await click.wait_message(predicate=lambda m: checkout_url(m) is not None)
    await shop.pay(first)
    await shop.wait(lambda: shop.has_role(BUYER) and shop.dms_to(BUYER), "role and receipt")
    for user, command in [(BUYER, "purchases"), (BUYER, "claim"), (FRIEND, "purchases")]:
        await shop.command(user, command)
    await shop.admin("shop product list")
    await shop.admin("shop queue")

    found = link_records(shop)
    assert len(found) >= 3, "the scan did not see the links it should"
    public = [(where, item) for where, ephemeral, item in found if not ephemeral]
    assert not public, f"checkout link in a public place: {public[:3]}"


async def test_event_metadata_naming_another_user_grants_only_our_buyer(shop: Shop) -> None:
    """A paid event whose metadata names another member and order fulfils our buyer's order."""
    await shop.add_product()
    mine = await shop.buy(BUYER)
    await shop.buy(FRIEND)  # FRIEND has an open order the metadata will point at
    friend_order = shop.bot.scalar("SELECT id FROM orders WHERE buyer_id=?", (FRIEND,))
    event = shop.stripe.complete_checkout(mine)
    event["data"]["object"]["metadata"].update(
        order_id=str(friend_order), user_id=str(FRIEND), recipient_id=str(FRIEND)
    )
    status, _ = await shop.sender.send(event)
    assert status == 200
    await shop.wait(lambda: shop.has_role(BUYER), "our buyer's role")
    await settle(shop)
    assert not shop.has_role(FRIEND)
    assert not shop.dms_to(FRIEND)
    rows = shop.bot.query("SELECT buyer_id, status FROM orders ORDER BY id")
    assert [tuple(r) for r in rows] == [(BUYER, "paid"), (FRIEND, "pending")]
    assert [r[0] for r in shop.bot.query("SELECT user_id FROM entitlements")] == [BUYER]
    assert {op[2] for op in shop.discord.role_ops} == {BUYER}


async def test_secrets_never_logged_at_debug(shop: Shop) -> None:
    """A full flow, errors included, at DEBUG: no token or key in the log or any page served."""
    await shop.add_product()
    shop.stripe.inject("/v1/checkout/sessions", status=500, count=3)  # every SDK retry fails
    failed = await shop.command(BUYER, "buy", {"product": "VIP"})
    assert "nothing was charged" in text_of(failed), text_of(failed)
    session_id = await shop.buy(BUYER)
    event = await shop.pay(session_id)
    status, _ = await shop.sender.send_raw(
        json.dumps(event).encode(), {"Stripe-Signature": "t=1,v1=00", "X-Try": WEBHOOK_SECRET}
    )
    assert status == 400
    await shop.wait(lambda: shop.has_role(BUYER) and shop.dms_to(BUYER), "role and receipt")
    await shop.command(BUYER, "purchases")
    await shop.admin("shop queue")
    pages = []
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/metrics", f"/checkout/success?session_id={session_id}"):
            async with http.get(shop.bot.url + path) as response:
                pages.append(await response.text())
    await settle(shop)

    log = shop.bot.log_text()
    assert " DEBUG " in log, "the bot did not log at DEBUG"
    secrets = {
        "discord.token": shop.discord.token,
        "stripe.secret_key": shop.stripe.secret_key,
        "stripe.webhook_secret": WEBHOOK_SECRET,
    }
    for key, secret in secrets.items():
        assert secret not in log, f"{key} appears in the log"
        assert not any(secret in page for page in pages), f"{key} appears in a served page"
