"""Two languages end to end: the synced commands carry German localizations, a German
client gets German replies, and after `/shop settings locale de` DMs are German."""

from __future__ import annotations

from tests.harness import MANAGE_GUILD
from tests.shop import ADMIN, BUYER, STRANGER, Shop, text_of


async def test_two_languages_german_reply_synced_localizations_and_dm_after_settings_locale(
    shop: Shop,
) -> None:
    """The PUT of the commands has German names and descriptions; a refusal to a German
    client is German; `/shop settings locale de` turns the buyer's receipt DM German
    (with a German price) while the buyer's own client is English."""
    synced = [c for scope in shop.discord.synced_commands.values() for c in scope]
    buy = next(c for c in synced if c["name"] == "buy")
    assert buy["name_localizations"]["de"] == "kaufen"
    assert buy["description_localizations"]["de"].startswith("Ein Produkt")
    admin = next(c for c in synced if c["name"] == "shop")
    assert admin["name_localizations"]["de"] == "shop"

    shop.discord.add_member(shop.guild_id, STRANGER, dispatch=False)
    refused = await shop.discord.invoke_command(
        shop.guild_id, STRANGER, "shop settings locale", {"locale": "de"}, permissions="0",
        locale="de",
    )  # fmt: skip
    assert "Nur Server-Admins" in text_of(await refused.wait_message())
    helped = await shop.discord.invoke_command(
        shop.guild_id, BUYER, "help", {}, permissions="0", locale="de"
    )
    assert "`/buy` — ein Produkt wählen" in text_of(await helped.wait_message())

    chosen = await shop.discord.invoke_command(
        shop.guild_id, ADMIN, "shop settings locale", {"locale": "de"},
        permissions=str(MANAGE_GUILD), locale="de",
    )  # fmt: skip
    assert "jetzt auf Deutsch" in text_of(await chosen.wait_message())

    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.dms_to(BUYER), "the receipt DM", timeout=30)
    receipt = str(shop.dms_to(BUYER)[0])
    assert "Danke für deinen Kauf von **VIP** (4,99 $)" in receipt


async def test_two_languages_german_admin_gets_german_replies_and_errors(shop: Shop) -> None:
    """A German admin's `/shop queue` (nothing queued), a refusal raised by the shop service
    (an unknown product) and a success reply are German; the same commands from an English
    client stay English."""

    async def admin(command: str, options: dict[str, object], locale: str) -> str:
        inter = await shop.discord.invoke_command(
            shop.guild_id, ADMIN, command, options, permissions=str(MANAGE_GUILD), locale=locale
        )
        return text_of(await inter.wait_message())

    assert "Keine Lieferaufträge." in await admin("shop queue", {}, "de")
    assert "No delivery jobs." in await admin("shop queue", {}, "en-US")
    unknown = {"product": "Platin"}
    assert "Hier gibt es kein Produkt namens `Platin`." in await admin(
        "shop product remove", unknown, "de"
    )
    assert "There is no product called `Platin` here." in await admin(
        "shop product remove", unknown, "en-US"
    )
    await shop.add_product()
    added = await admin("shop product list", {}, "de")
    assert "im Verkauf" in added and "4,99 $" in added
