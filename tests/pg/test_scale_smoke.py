"""Scale-out smoke: two real `shopbot run` processes over eight shards, 200 guilds, some
hundreds of purchases paid through signed webhooks sent to both processes (issue 16)."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.fleet import (
    Fleet,
    check_run,
    job_counts,
    paid_events,
    post_spread,
    prefill,
    spread_guild_ids,
    wait_until_async,
)

SHARDS = 8
PROCESSES = 2
GUILDS = 200
ORDERS = 300
#: A job queued by one process for a guild of the other is found by the owner's polling
#: (up to 30 s) until cross-process wake-ups land; the bound is generous.
DRAIN_TIMEOUT = 90


async def test_two_processes_deliver_every_purchase_once_from_the_guilds_owner(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe, pg_url: str
) -> None:
    """`--shard-count 8 --shard-ids 0-3` and `… 4-7` on one database, 200 guilds spread
    over the shards, 300 pending orders: the webhooks, alternately sent to either process,
    are all acknowledged; every grant_role job completes exactly once with exactly one 2xx
    role PUT, sent by the process owning the guild, in the guild's job order; no 429; every
    buyer has the role and every event is processed."""
    gateway = fake_discord.gateway
    gateway.shard_count = SHARDS
    gateway.max_concurrency = 4  # buckets {0, 4}, {1, 5}, …: one shard of each per process
    gateway.enforce_identify_rate = True
    fake_discord.set_role_rate_limit(10, 1.0)
    fake_discord.set_global_rate_limit(50, 1.0)  # Discord's, for the whole fleet
    guilds = spread_guild_ids(GUILDS, SHARDS)
    purchases = await prefill(pg_url, fake_discord, fake_stripe, guilds, ORDERS)
    fleet = await Fleet.create(tmp_path, fake_discord, fake_stripe, pg_url, SHARDS, PROCESSES)
    try:
        await fleet.start(timeout=60)
        since = len(fake_discord.requests)
        acked, _ = await post_spread(fleet.webhook_urls, paid_events(fake_stripe, purchases))
        assert acked == ORDERS

        async def drained() -> bool:
            counts = await job_counts(pg_url)
            return counts.get("completed", 0) == ORDERS and not counts.get("open")

        await wait_until_async(drained, DRAIN_TIMEOUT, "every job done")
        checks = await check_run(fleet, pg_url, purchases, since=since)
        assert checks.problems == [], (checks.problems, checks.figures)
        assert checks.figures["2xx role PUTs"] == ORDERS
        senders = {fleet.ports[r.port] for r in fake_discord.requests[since:] if r.port}
        assert senders == {0, 1}  # both processes delivered
    finally:
        await fleet.stop()
    assert all("Traceback" not in bot.log_text() for bot in fleet.bots)
