"""The Discord fake's sharded gateway: shard validation (4010/4011), the IDENTIFY rate per
`max_concurrency` bucket (op 9), and each shard receiving only its own guilds' events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import fake_discord_fixture  # noqa: F401 - "fake_discord"
from tests.fakes.discord.gateway import GUILDS, shard_of


def guild_id_on(shard: int, count: int, nth: int = 0) -> int:
    """A snowflake whose shard of `count` is `shard`."""
    return ((10_000_000 * count + shard + count * nth) << 22) | 7


class FakeTime:
    """The fake gateway's identify clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def identify(
    fake: FakeDiscord, shard: Any, *, token: str | None = None
) -> tuple[dict[str, Any] | None, int | None, list[dict[str, Any]]]:
    """One raw websocket IDENTIFY: (first payload after HELLO, close code, every payload)."""
    payloads: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url) as ws:
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["op"] == 10
        data: dict[str, Any] = {"token": token or fake.token, "intents": GUILDS}
        if shard is not None:
            data["shard"] = shard
        await ws.send_json({"op": 2, "d": data})
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            payloads.append(json.loads(msg.data))
            if payloads[-1]["op"] == 9 or payloads[-1].get("t") == "READY":
                if payloads[-1]["op"] == 9:
                    break
                with contextlib.suppress(TimeoutError):  # the GUILD_CREATEs that follow
                    while (more := await ws.receive(timeout=0.3)).type == aiohttp.WSMsgType.TEXT:
                        payloads.append(json.loads(more.data))
                break
        return (payloads[0] if payloads else None), ws.close_code, payloads


async def test_identify_with_an_invalid_shard_is_closed_with_4010(
    fake_discord: FakeDiscord,
) -> None:
    """A shard id not below the count, a count of 0, a malformed pair, or a count other than
    the one the app shards by: close code 4010 Invalid shard, recorded; a valid one: READY."""
    fake_discord.gateway.shard_count = 4
    for bad in ([4, 4], [0, 0], [-1, 4], [1], "0,4", [0, 2]):
        first, code, _ = await identify(fake_discord, bad)
        assert (first, code) == (None, 4010), bad
    first, code, _ = await identify(fake_discord, [3, 4])
    assert first is not None and first["t"] == "READY" and first["d"]["shard"] == [3, 4]
    outcomes = [(r.shard, r.shard_count, r.outcome) for r in fake_discord.gateway.identify_log]
    assert outcomes[-2:] == [(0, 2, 4010), (3, 4, "ready")]
    assert len(outcomes) == 6 + 1


async def test_a_shard_with_too_many_guilds_is_closed_with_4011(
    fake_discord: FakeDiscord,
) -> None:
    """More guilds on one shard than Discord allows (2,500; 2 here): 4011 Sharding required;
    the same guilds over two shards are accepted."""
    fake_discord.gateway.max_guilds_per_shard = 2
    for nth in range(3):
        fake_discord.add_guild(guild_id=guild_id_on(nth % 2, 2, nth), dispatch=False)
    first, code, _ = await identify(fake_discord, None)
    assert (first, code) == (None, 4011)
    first, _, _ = await identify(fake_discord, [0, 2])
    assert first is not None and first["t"] == "READY"


async def test_gateway_bot_reports_shards_and_session_start_limit(
    fake_discord: FakeDiscord,
) -> None:
    """GET /gateway/bot: the recommended shard count and session_start_limit with the
    configured max_concurrency; each IDENTIFY uses one session start."""
    fake_discord.gateway.max_concurrency = 4
    fake_discord.gateway.recommended_shards = 16

    async def gateway_bot() -> dict[str, Any]:
        headers = {"Authorization": f"Bot {fake_discord.token}"}
        async with aiohttp.ClientSession() as http:
            url = f"{fake_discord.api_base}/gateway/bot"
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
                return dict(await response.json())

    body = await gateway_bot()
    assert body["shards"] == 16 and body["url"] == fake_discord.gateway_url
    limit = body["session_start_limit"]
    assert (limit["total"], limit["remaining"], limit["max_concurrency"]) == (1000, 1000, 4)
    assert limit["reset_after"] > 0
    await identify(fake_discord, [0, 16])
    assert (await gateway_bot())["session_start_limit"]["remaining"] == 999


async def test_identify_sooner_than_5_s_in_its_bucket_gets_invalid_session(
    fake_discord: FakeDiscord,
) -> None:
    """One IDENTIFY per `shard % max_concurrency` bucket per 5 s: another shard of the same
    bucket within 5 s gets op 9 (d=false) and no session; a shard of another bucket, or the
    same bucket 5 s later, gets READY. Every try is recorded with its time and bucket."""
    gateway = fake_discord.gateway
    gateway.enforce_identify_rate = True
    gateway.max_concurrency = 2
    gateway.identify_clock = clock = FakeTime()
    first, _, _ = await identify(fake_discord, [0, 4])
    assert first is not None and first["t"] == "READY"
    clock.now += 1
    first, _, _ = await identify(fake_discord, [1, 4])  # bucket 1: free
    assert first is not None and first["t"] == "READY"
    clock.now += 3
    first, _, _ = await identify(fake_discord, [2, 4])  # bucket 0, 4 s after shard 0
    assert first == {"op": 9, "d": False, "s": None, "t": None}
    assert 2 not in gateway.sessions
    clock.now += 1
    first, _, _ = await identify(fake_discord, [2, 4])  # 5 s after shard 0
    assert first is not None and first["t"] == "READY"
    log = [(r.at - 1000, r.shard, r.bucket, r.outcome) for r in gateway.identify_log]
    assert log == [
        (0, 0, 0, "ready"),
        (1, 1, 1, "ready"),
        (4, 2, 0, "invalid_session"),
        (5, 2, 0, "ready"),
    ]


async def test_each_shard_receives_only_its_guilds(fake_discord: FakeDiscord) -> None:
    """READY lists, and GUILD_CREATE sends, only the shard's guilds; later guild events go to
    the guild's shard only; entitlement events to shard 0 only."""
    guilds = {shard: [guild_id_on(shard, 2, n) for n in range(2)] for shard in (0, 1)}
    for ids in guilds.values():
        for gid in ids:
            fake_discord.add_guild(guild_id=gid, dispatch=False)
    for shard in (0, 1):
        _, _, payloads = await identify(fake_discord, [shard, 2])
        ready = payloads[0]["d"]
        assert sorted(int(g["id"]) for g in ready["guilds"]) == guilds[shard]
        created = [int(p["d"]["id"]) for p in payloads if p.get("t") == "GUILD_CREATE"]
        assert sorted(created) == guilds[shard]
    sessions = fake_discord.gateway.sessions
    before = {shard: sessions[shard].seq for shard in (0, 1)}
    fake_discord.add_role(guilds[1][0], "VIP")
    assert (sessions[0].seq, sessions[1].seq) == (before[0], before[1] + 1)
    sku = fake_discord.add_sku("Pro")
    fake_discord.grant_entitlement(sku["id"], user_id=4242)
    assert (sessions[0].seq, sessions[1].seq) == (before[0] + 1, before[1] + 1)
    assert sessions[0].log[-1][1]["t"] == "ENTITLEMENT_CREATE"


class ShardedClient(discord.AutoShardedClient):
    """discord.py's own sharded client; `skip_wait` replaces its 5 s pre-IDENTIFY pause."""

    def __init__(self, shard_count: int, shard_ids: list[int]) -> None:
        super().__init__(
            intents=discord.Intents(guilds=True),
            shard_count=shard_count,
            shard_ids=shard_ids,
            guild_ready_timeout=0.05,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
        )
        self.hook_calls: list[tuple[int | None, bool]] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        self.hook_calls.append((shard_id, initial))


@contextlib.asynccontextmanager
async def sharded_client(
    fake: FakeDiscord, shard_count: int, shard_ids: list[int]
) -> AsyncIterator[ShardedClient]:
    old_base, old_gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    client = ShardedClient(shard_count, shard_ids)
    task = asyncio.create_task(client.start(fake.token))
    try:
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


async def test_discord_py_identifies_again_after_a_too_fast_identify(
    fake_discord: FakeDiscord,
) -> None:
    """discord.py's AutoShardedClient with two shards of one bucket and no pause between
    IDENTIFYs: the second gets op 9, discord.py IDENTIFYs it again (through its
    before_identify_hook), and once 5 s passed on the gateway's clock both shards are
    READY, each with only its guilds."""
    gateway = fake_discord.gateway
    gateway.enforce_identify_rate = True
    gateway.identify_clock = clock = FakeTime()
    mine = {shard: guild_id_on(shard, 2) for shard in (0, 1)}
    for gid in mine.values():
        fake_discord.add_guild(guild_id=gid, dispatch=False)
    async with sharded_client(fake_discord, 2, [0, 1]) as client:
        await fake_discord.wait_for(
            lambda: any(r.outcome == "invalid_session" for r in gateway.identify_log),
            what="op 9 for the second shard",
        )
        clock.now += 5
        await gateway.wait_shards_ready({0, 1}, timeout=20)
        await fake_discord.wait_for(lambda: len(client.guilds) == 2, what="both guilds")
        assert {g.id: g.shard_id for g in client.guilds} == {mine[0]: 0, mine[1]: 1}
        assert all(shard_of(g.id, 2) == g.shard_id for g in client.guilds)
        shard_one = [r.outcome for r in gateway.identify_log if r.shard == 1]
        assert shard_one[0] == "invalid_session" and shard_one[-1] == "ready"
        assert (1, False) in client.hook_calls  # the re-IDENTIFY went through the hook


async def test_global_limit_refuses_the_51st_bot_request_in_a_second(
    fake_discord: FakeDiscord,
) -> None:
    """Discord's global limit per token: past 50 requests in a second the fake answers a
    global 429 (`global: true`, `X-RateLimit-Global`); interaction answers do not count."""
    fake_discord.set_global_rate_limit(50, per_seconds=30.0)  # one long window: no race
    guild = fake_discord.add_guild(name="Shop")
    url = f"{fake_discord.api_base}/guilds/{guild.id}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake_discord.token}"}) as s:
        statuses = []
        for _ in range(50):
            async with s.get(url) as response:
                statuses.append(response.status)
        answer = {"type": 4, "data": {"content": "hi"}}
        async with s.post(f"{fake_discord.api_base}/interactions/1/tok/callback", json=answer) as r:
            assert r.status != 429  # not counted against the global limit
        async with s.get(url) as response:
            body = await response.json()
            assert response.status == 429 and body["global"] is True
            assert response.headers["X-RateLimit-Global"] == "true"
    assert statuses == [200] * 50
    assert fake_discord.ratelimits.global_429s == 1
