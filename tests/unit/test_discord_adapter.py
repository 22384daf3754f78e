"""The Discord adapter (bot/discord_adapter.py): real discord.py calls against the in-process
fake Discord, which records every request; Discord's errors become the worker's outcomes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord
import pytest
import pytest_asyncio
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.discord_adapter import DiscordAdapter
from bot.errors import MemberMissing, PermanentFailure, TransientFailure
from tests.fakes.discord import FakeDiscord, FakeGuild
from tests.fakes.discord.fixtures import fake_discord_fixture  # noqa: F401 - "fake_discord"

BUYER = 4242


@pytest_asyncio.fixture
async def adapter(fake_discord: FakeDiscord, guild: FakeGuild) -> AsyncIterator[DiscordAdapter]:
    """A bot logged in to the fake (in `guild`; no member cache), wrapped by the adapter."""
    old_base, old_gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake_discord.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake_discord.gateway_url)
    intents = discord.Intents.none()
    intents.guilds = True
    bot = commands.Bot(
        command_prefix="!",
        intents=intents,
        member_cache_flags=discord.MemberCacheFlags.none(),
        guild_ready_timeout=0.05,
        max_ratelimit_timeout=30.0,  # discord.py's minimum
    )
    task = asyncio.create_task(bot.start(fake_discord.token))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        yield DiscordAdapter(bot)
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
def guild(fake_discord: FakeDiscord) -> FakeGuild:
    return fake_discord.add_guild("Shop", dispatch=False)


async def test_role_add_and_remove_reach_discord_with_the_reason(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    vip = fake_discord.add_role(guild.id, "VIP", dispatch=False)
    fake_discord.add_member(guild.id, BUYER, dispatch=False)
    await adapter.add_role(guild.id, BUYER, vip.id, "order #1")
    assert await adapter.member_role_ids(guild.id, BUYER) == frozenset({vip.id})
    await adapter.remove_role(guild.id, BUYER, vip.id, "refund of order #1")
    assert [(op.op, op.role_id, op.reason, op.status) for op in fake_discord.role_ops] == [
        ("add", vip.id, "order #1", 204),
        ("remove", vip.id, "refund of order #1", 204),
    ]
    assert await adapter.member_role_ids(guild.id, BUYER) == frozenset()


async def test_member_not_in_the_server_means_wait_for_them(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    vip = fake_discord.add_role(guild.id, "VIP", dispatch=False)
    with pytest.raises(MemberMissing):
        await adapter.add_role(guild.id, BUYER, vip.id, "order #1")
    with pytest.raises(MemberMissing):
        await adapter.member_role_ids(guild.id, BUYER)
    await adapter.remove_role(guild.id, BUYER, vip.id, "gone anyway")  # nothing to remove


async def test_role_above_the_bot_is_a_permanent_failure_that_says_how_to_fix_it(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    high = fake_discord.add_role(guild.id, "Staff", position=50)
    fake_discord.add_member(guild.id, BUYER, dispatch=False)
    cached = adapter.bot.get_guild(guild.id)
    assert cached is not None
    await fake_discord.wait_for(lambda: cached.get_role(high.id), what="GUILD_ROLE_CREATE")
    with pytest.raises(PermanentFailure, match="at or above the bot's highest role"):
        await adapter.add_role(guild.id, BUYER, high.id, "order #1")


async def test_unknown_role_and_closed_dms_are_permanent(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    fake_discord.add_member(guild.id, BUYER, dispatch=False)
    with pytest.raises(PermanentFailure, match="no longer exists"):
        await adapter.add_role(guild.id, BUYER, 999, "order #1")
    fake_discord.dm_closed.add(BUYER)
    with pytest.raises(PermanentFailure, match="does not accept DMs"):
        await adapter.send_dm(BUYER, "receipt")


async def test_server_errors_and_long_rate_limits_are_transient(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    vip = fake_discord.add_role(guild.id, "VIP", dispatch=False)
    fake_discord.add_member(guild.id, BUYER, dispatch=False)
    fake_discord.inject("PUT /guilds", status=503)
    with pytest.raises(TransientFailure, match="Discord error 503"):
        await adapter.add_role(guild.id, BUYER, vip.id, "order #1")
    # Longer than the client waits by itself (max_ratelimit_timeout): the worker reschedules.
    fake_discord.inject("PUT /guilds", status=429, retry_after=60)
    with pytest.raises(TransientFailure) as caught:
        await adapter.add_role(guild.id, BUYER, vip.id, "order #1")
    assert caught.value.retry_after == pytest.approx(60, abs=1)
    await adapter.add_role(guild.id, BUYER, vip.id, "order #1")  # the next one goes through
    assert await adapter.member_role_ids(guild.id, BUYER) == frozenset({vip.id})


async def test_dm_and_channel_messages_are_sent(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    fake_discord.add_member(guild.id, BUYER, dispatch=False)
    await adapter.send_dm(BUYER, "Thanks for buying **Gold**")
    channel_id = next(iter(guild.channels))
    await adapter.send_channel(channel_id, "sale: Gold")
    assert [(user, body["content"]) for user, body in fake_discord.dms] == [
        (BUYER, "Thanks for buying **Gold**")
    ]
    assert [(cid, body["content"]) for cid, body in fake_discord.channel_messages] == [
        (channel_id, "sale: Gold")
    ]


async def test_member_roles_pages_by_a_thousand(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    vip = fake_discord.add_role(guild.id, "VIP", dispatch=False)
    for n in range(2_345):
        fake_discord.add_member(guild.id, 10_000 + n, roles=[vip] if n % 2 else [], dispatch=False)
    seen = {user: roles async for user, roles in adapter.member_roles(guild.id)}
    bought = range(10_000, 10_000 + 2_345)
    assert set(bought) <= set(seen) and len(seen) == 2_345 + 2  # + the owner and the bot
    assert sum(vip.id in seen[uid] for uid in bought) == 2_345 // 2
    lists = [r for r in fake_discord.requests if r.method == "GET" and r.path.endswith("/members")]
    assert len(lists) == 3
