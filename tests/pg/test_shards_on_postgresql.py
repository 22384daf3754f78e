"""Two real `shopbot run` processes over one PostgreSQL database, four shards between them."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.gateway import shard_of
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, wait_until
from tests.unit.test_fake_discord_shards import guild_id_on

SHARDS = 4
RANGES = ("0-1", "2-3")
RECONCILED = re.compile(r"reconciled guild (\d+):")


async def test_two_processes_share_four_shards_on_postgresql(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe, pg_url: str
) -> None:
    """`shopbot run --shard-count 4 --shard-ids 0-1` and `… 2-3` on one database: both
    become healthy with every shard READY; the gateway (which answers a too-early IDENTIFY
    with op 9) accepted every first IDENTIFY, and in each max_concurrency bucket they came
    5 s apart although the two shards of a bucket are in different processes; each process
    reconciled exactly the guilds of its own shards; the fleet's periodic work (Stripe
    catch-up, Discord entitlement reconcile) ran in one process only; a shard whose session
    Discord invalidated is identified again and only its guilds are reconciled again."""
    gateway = fake_discord.gateway
    gateway.shard_count = SHARDS
    gateway.max_concurrency = 2  # buckets {0, 2} and {1, 3}: one shard of each per process
    gateway.enforce_identify_rate = True
    guilds = [guild_id_on(shard, SHARDS, nth) for shard in range(SHARDS) for nth in range(2)]
    for guild_id in guilds:
        fake_discord.add_guild(guild_id=guild_id, dispatch=False)
    for index in range(len(RANGES)):
        (tmp_path / f"p{index}").mkdir()
    bots = [
        BotProcess(
            tmp_path / f"p{index}",
            fake_discord,
            fake_stripe,
            [],
            env={"SHOPBOT_DATABASE__URL": pg_url},
            run_args=["--shard-count", str(SHARDS), "--shard-ids", ids],
        )
        for index, ids in enumerate(RANGES)
    ]
    try:
        for bot in bots:
            await bot.start(wait=False)
        for bot in bots:
            await bot.wait_healthy(timeout=60)
        await gateway.wait_shards_ready(set(range(SHARDS)), timeout=30)

        log = gateway.identify_log
        assert sorted(r.shard for r in log) == list(range(SHARDS)), log
        assert {r.outcome for r in log} == {"ready"}, log
        by_bucket: dict[int, list[float]] = defaultdict(list)
        for record in log:
            by_bucket[record.bucket].append(record.at)
        assert sorted(by_bucket) == [0, 1]
        for times in by_bucket.values():
            assert len(times) == 2 and abs(times[1] - times[0]) >= 5.0, log

        def reconciled(bot: BotProcess) -> set[int]:
            return {int(g) for g in RECONCILED.findall(bot.log_text())}

        for bot, first in zip(bots, (0, 2), strict=True):
            mine = {g for g in guilds if shard_of(g, SHARDS) in (first, first + 1)}
            await wait_until(lambda b=bot, m=mine: reconciled(b) >= m, 30, "own guilds")  # type: ignore[misc]
            assert reconciled(bot) == mine
            assert f"in {len(mine)} servers" in bot.log_text()

        def members_listed() -> list[str]:
            return [
                r.path
                for r in fake_discord.requests
                if r.method == "GET" and r.path.endswith("/members")
            ]

        assert sorted(members_listed()) == sorted(f"/guilds/{g}/members" for g in guilds)

        await wait_until(
            lambda: all("periodic lease" in bot.log_text() for bot in bots), 30, "lease state"
        )
        holders = [bot for bot in bots if "now holds the periodic lease" in bot.log_text()]
        assert len(holders) == 1
        waiting = [
            bot for bot in bots if "another process holds the periodic lease" in bot.log_text()
        ]
        assert waiting == [bot for bot in bots if bot is not holders[0]]

        def entitlement_listings() -> int:
            return sum(
                1
                for r in fake_discord.requests
                if r.method == "GET" and re.fullmatch(r"/applications/\d+/entitlements", r.path)
            )

        def event_listings() -> int:
            return sum(
                1 for r in fake_stripe.requests if r.method == "GET" and r.path == "/v1/events"
            )

        await wait_until(lambda: entitlement_listings() and event_listings(), 30, "fleet work")
        assert (entitlement_listings(), event_listings()) == (1, 1)

        # Discord invalidates shard 1's session: its process IDENTIFYs it again in its
        # bucket's turn and reconciles that shard's guilds only.
        await fake_discord.invalidate_session(shard=1)
        await fake_discord.wait_for(
            lambda: (
                [r.outcome for r in log if r.shard == 1] == ["ready", "ready"]
                and 1 in gateway.ready_shards()
            ),
            timeout=30,
            what="shard 1 identified again",
        )
        await wait_until(lambda: len(members_listed()) == len(guilds) + 2, 30, "shard 1 reconcile")
        again = members_listed()[len(guilds) :]
        assert sorted(again) == sorted(
            f"/guilds/{g}/members" for g in guilds if shard_of(g, SHARDS) == 1
        )
    finally:
        for bot in bots:
            await bot.stop()
