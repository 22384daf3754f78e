"""`/shop product add … max_devices` and `/shop license reset key` through the real process."""

from __future__ import annotations

from tests.shop import BUYER, Shop, text_of


async def test_license_reset_command_unbinds_a_bought_key(shop: Shop) -> None:
    """An admin resets a bought key (its device rows go); an unknown key gets a clear
    refusal; a member without Manage Server is refused server-side."""
    await shop.add_product("Game", "15", role=None, max_devices=2)
    assert shop.bot.scalar("SELECT max_devices FROM products WHERE name='Game'") == 2
    await shop.admin("shop license add", {"product": "Game", "keys": "KEY-1"})
    await shop.admin("shop action add", {"product": "Game", "type": "deliver_license",
                                         "stage": "on_purchase"})  # fmt: skip
    await shop.pay(await shop.buy(BUYER, "Game"))
    await shop.wait(lambda: any("KEY-1" in str(m) for m in shop.dms_to(BUYER)), "key DM")
    unknown = await shop.admin("shop license reset", {"key": "KEY-NOPE"})
    assert "No key like that has been handed out in this server." in text_of(unknown)
    refused = await shop.admin("shop license reset", {"key": "KEY-1"}, user=BUYER, permissions=0)
    assert "Only server admins (Manage Server) can use `/shop`." in text_of(refused)
    done = await shop.admin("shop license reset", {"key": "KEY-1"})
    assert "can be used on new devices now" in text_of(done)
    assert shop.bot.scalar("SELECT COUNT(*) FROM audit_log WHERE kind='license.reset'") == 1
