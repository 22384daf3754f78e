"""Discord SKUs end to end (SPEC §6b): the real `shopbot run` against the fake Discord's
monetization surface — link, ENTITLEMENT_CREATE/UPDATE/DELETE, consumables, entitlements
made while the bot was stopped, `/buy` with Discord's premium button, and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
from typing import Any

from tests.fakes.discord.entitlements import CONSUMABLE
from tests.harness import shopbot_command
from tests.shop import BUYER, FRIEND, Shop, text_of


async def link(shop: Shop, name: str = "VIP", sku_type: int = 5) -> dict[str, Any]:
    sku = shop.discord.add_sku(f"{name} SKU", sku_type)
    reply = await shop.admin("shop sku link", {"sku": sku["id"], "product": name})
    assert "is now sold as the Discord SKU" in text_of(reply), text_of(reply)
    return sku


def settled(shop: Shop, entitlement: dict[str, Any]) -> int:
    """How many creates of this entitlement the bot has finished with (its debug log)."""
    return shop.bot.log_text().count(
        f"entitlement {entitlement['id']} settled after ENTITLEMENT_CREATE"
    )


def orders_of(shop: Shop, user: int) -> list[tuple[Any, ...]]:
    rows = shop.bot.query(
        "SELECT status, source FROM orders WHERE recipient_id=? ORDER BY id", (user,)
    )
    return [tuple(row) for row in rows]


def no_violations(shop: Shop) -> None:
    assert shop.discord.violations == [], shop.discord.violations


async def test_sku_subscription_grants_ends_and_refunds(shop: Shop) -> None:
    """A linked subscription SKU: create grants the role (once, however often it is sent);
    an update with ends_at in the past removes it; on another entitlement, delete removes
    the role and runs on_refund."""
    await shop.add_product("VIP", "4.99")
    reply = await shop.admin(
        "shop action add",
        {"product": "VIP", "type": "send_message", "stage": "on_refund", "message": "Refunded!"},
    )
    assert "Added action" in text_of(reply), text_of(reply)
    sku = await link(shop)
    listing = text_of(await shop.admin("shop sku list"))
    assert f"`{sku['id']}` **VIP SKU** · subscription · sells **VIP**" in listing

    bought = shop.discord.grant_entitlement(sku["id"], user_id=BUYER)
    await shop.wait(lambda: shop.has_role(BUYER), "role from ENTITLEMENT_CREATE")
    shop.discord.dispatch_shard0("ENTITLEMENT_CREATE", bought)
    await shop.wait(lambda: settled(shop, bought) == 2, "the repeated create handled")
    assert orders_of(shop, BUYER) == [("paid", "sku")]
    assert len(shop.role_adds(BUYER)) == 1

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    shop.discord.update_entitlement(bought["id"], ends_at=past)
    await shop.wait(lambda: not shop.has_role(BUYER), "role removed at ends_at")

    refunded = shop.discord.grant_entitlement(sku["id"], user_id=FRIEND)
    await shop.wait(lambda: shop.has_role(FRIEND), "friend's role")
    shop.discord.refund_entitlement(refunded["id"])
    await shop.wait(lambda: not shop.has_role(FRIEND), "role removed by the refund")
    await shop.wait(
        lambda: any("Refunded!" in str(dm) for dm in shop.dms_to(FRIEND)), "on_refund ran"
    )
    assert orders_of(shop, FRIEND) == [("refunded", "sku")]
    no_violations(shop)


async def test_sku_consumable_consumed_once(shop: Shop) -> None:
    """A consumable SKU is delivered, then consumed exactly once although its create came
    twice."""
    await shop.add_product("Potion", "1.00")
    sku = await link(shop, "Potion", CONSUMABLE)
    bought = shop.discord.grant_entitlement(sku["id"], user_id=BUYER)
    shop.discord.dispatch_shard0("ENTITLEMENT_CREATE", bought)
    await shop.wait(lambda: shop.discord.consumes, "consumed")
    assert shop.has_role(BUYER), "consumed before the delivery"
    await shop.wait(lambda: settled(shop, bought) == 2, "the repeated create handled")
    await shop.wait(
        lambda: (
            shop.bot.scalar(
                "SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending', 'running')"
            )
            == 0
        ),
        "queue drained",
    )
    assert shop.discord.consumes == [int(bought["id"])]
    assert shop.discord.entitlements[int(bought["id"])]["consumed"] is True
    no_violations(shop)


async def test_sku_entitlement_made_while_stopped_is_delivered_at_start(shop: Shop) -> None:
    """An entitlement bought while the bot was down (no gateway event) is found in Discord's
    list at start and delivered; one deleted meanwhile is revoked."""
    await shop.add_product("VIP", "4.99")
    sku = await link(shop)
    kept = shop.discord.grant_entitlement(sku["id"], user_id=FRIEND)
    await shop.wait(lambda: shop.has_role(FRIEND), "friend's role")
    await shop.bot.stop()
    shop.discord.grant_entitlement(sku["id"], user_id=BUYER, dispatch=False)
    shop.discord.refund_entitlement(kept["id"], dispatch=False)
    await shop.bot.start()
    await shop.wait(lambda: shop.has_role(BUYER), "role from the listing at start")
    await shop.wait(lambda: not shop.has_role(FRIEND), "refund found in the listing")
    assert orders_of(shop, BUYER) == [("paid", "sku")]
    no_violations(shop)


async def test_sku_buy_shows_premium_button_or_says_held(shop: Shop) -> None:
    """`/buy` of an SKU product answers with Discord's premium button (no Stripe checkout);
    a member who holds the SKU (Interaction.entitlements) is told so."""
    await shop.add_product("VIP", "4.99")
    sku = await link(shop)
    message = await shop.command(BUYER, "buy", {"product": "VIP"})
    buttons = [b for row in message["components"] for b in row["components"]]
    assert [(b["style"], b["sku_id"]) for b in buttons] == [(6, sku["id"])], buttons
    assert "custom_id" not in buttons[0] and "label" not in buttons[0]
    assert shop.stripe.sessions == {}
    shop.discord.grant_entitlement(sku["id"], user_id=BUYER)
    held = await shop.command(BUYER, "buy", {"product": "VIP"})
    assert "You already have **VIP** through Discord" in text_of(held)
    refused = await shop.admin("shop sku link", {"sku": "123456789", "product": "VIP"})
    assert "This app has no SKU `123456789`" in text_of(refused)
    no_violations(shop)


async def test_sku_cli_test_entitlement(shop: Shop) -> None:
    """`shopbot sku test-entitlement create --sku S --user U` makes a test entitlement (the
    running bot delivers it); `delete ID` takes it back; a bad SKU is one clear line."""
    await shop.add_product("VIP", "4.99")
    sku = await link(shop)

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*shopbot_command(), "--config", str(shop.bot.config_path), "sku", *args]
        return await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    made = await cli("test-entitlement", "create", "--sku", sku["id"], "--user", str(BUYER))
    assert made.returncode == 0, made.stderr
    entitlement_id = made.stdout.split()[2]
    assert shop.discord.entitlements[int(entitlement_id)]["type"] == 4
    await shop.wait(lambda: shop.has_role(BUYER), "role from the test entitlement")
    deleted = await cli("test-entitlement", "delete", entitlement_id)
    assert deleted.returncode == 0, deleted.stderr
    await shop.wait(lambda: not shop.has_role(BUYER), "role taken back")
    bad = await cli("test-entitlement", "create", "--sku", "42", "--guild", str(shop.guild_id))
    assert bad.returncode == 2 and "Unknown SKU (10046)" in bad.stderr, bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("shopbot:")] == [
        bad.stderr.strip().splitlines()[-1]
    ]  # one line (the harness config logs at DEBUG, hence asyncio's line before it)
    twice = await cli("test-entitlement", "delete", entitlement_id)
    assert twice.returncode == 2 and "Unknown Entitlement (10029)" in twice.stderr


async def test_sku_server_entitlement_shown_in_diagnose_and_stats(shop: Shop) -> None:
    """A server's own entitlement is recorded against the server (no member gets a role) and
    shown by /shop diagnose and /shop stats."""
    await shop.add_product("VIP", "4.99")
    sku = shop.discord.add_sku("Server Boost", 5, guild=True)
    await shop.admin("shop sku link", {"sku": sku["id"], "product": "VIP"})
    shop.discord.grant_entitlement(sku["id"], guild_id=shop.guild_id)
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM orders WHERE source='sku'") == 1,
        "the server's order",
    )
    assert shop.bot.scalar("SELECT buyer_id FROM orders") == 0
    assert shop.discord.role_ops == []
    diagnose = text_of(await shop.admin("shop diagnose"))
    assert "Discord server subscriptions (no member roles): **Server Boost** (active)" in diagnose
    stats = text_of(await shop.admin("shop stats"))
    assert "Discord server subscriptions **Server Boost** (active)" in stats
    no_violations(shop)
