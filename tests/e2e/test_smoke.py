"""The real `shopbot run` connects to the fakes, syncs commands and answers ephemerally."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.shop import BUYER, Shop, text_of


async def test_connects_syncs_and_is_healthy(shop: Shop) -> None:
    """healthz is 200 with the gateway connected; /shop carries default_member_permissions."""
    async with aiohttp.ClientSession() as session, session.get(f"{shop.bot.url}/healthz") as r:
        assert r.status == 200
        assert (await r.json())["gateway"] is True
    commands = (
        shop.discord.synced_commands.get(shop.guild_id)
        or shop.discord.synced_commands[str(shop.guild_id)]
    )
    names = {c["name"] for c in commands}
    assert {"buy", "claim", "purchases", "help", "shop"} <= names
    admin = next(c for c in commands if c["name"] == "shop")
    assert admin["default_member_permissions"] == str(1 << 5)


async def test_help_is_ephemeral(shop: Shop) -> None:
    """A slash command is answered, ephemerally, by the real process."""
    reply = await shop.command(BUYER, "help")
    assert "/buy" in text_of(reply)


async def healthz(shop: Shop) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"{shop.bot.url}/healthz") as r:
        return r.status, await r.json()


async def test_healthz_follows_the_gateway_connection(shop: Shop) -> None:
    """Issue 9 item 11: with the socket dropped and Discord refusing to reconnect, /healthz
    used to answer 200 "gateway": true (is_ready() stays true after the first READY)."""
    shop.discord.gateway.accepting = False
    await shop.discord.drop_connection()
    async with asyncio.timeout(15):
        while (answer := await healthz(shop))[0] != 503:
            await asyncio.sleep(0.05)
    assert answer[1]["gateway"] is False and answer[1]["database"] is True
    shop.discord.gateway.accepting = True
    await shop.bot.wait_healthy()
    status, body = await healthz(shop)
    assert status == 200 and body["gateway"] is True
