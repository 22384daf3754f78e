"""One `shopbot run` with shards on SQLite: IDENTIFY turns in one process, and a shard
range Discord refuses."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, wait_until
from tests.unit.test_fake_discord_shards import guild_id_on


async def test_two_shards_of_one_bucket_identify_5_s_apart(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """`--shard-count 2` with max_concurrency 1: both shards are one bucket, so the second
    IDENTIFY comes at least 5 s after the first, the gateway (which enforces it) never
    answers op 9, and each shard gets its own guild."""
    gateway = fake_discord.gateway
    gateway.shard_count = 2
    gateway.enforce_identify_rate = True
    for shard in (0, 1):
        fake_discord.add_guild(guild_id=guild_id_on(shard, 2), dispatch=False)
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [], run_args=["--shard-count", "2"])
    try:
        await bot.start()
        await gateway.wait_shards_ready({0, 1})
        log = gateway.identify_log
        assert [(r.shard, r.bucket, r.outcome) for r in log] == [(0, 0, "ready"), (1, 0, "ready")]
        assert log[1].at - log[0].at >= 5.0
        assert "running shards 0,1 of 2" in bot.log_text()
        assert "shard 1 waits" in bot.log_text()
    finally:
        await bot.stop()


async def test_a_shard_count_discord_refuses_stops_with_one_line(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """The app shards by 3 but the process says 2: Discord closes with 4010 and `run` exits
    with one line naming the settings to check."""
    fake_discord.gateway.shard_count = 3
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [], run_args=["--shard-count", "2"])
    await bot.start(wait=False)
    try:
        proc = bot.proc
        assert proc is not None
        await wait_until(lambda: proc.poll() is not None, 30, "shopbot to exit")
        assert bot.proc is not None and bot.proc.returncode == 2, bot.log_text()[-2000:]
        assert (
            "shopbot: Discord refused shard 0 (4010 invalid shard): check discord.shard_count "
            "and discord.shard_ids" in bot.log_text()
        )
    finally:
        await bot.stop()
