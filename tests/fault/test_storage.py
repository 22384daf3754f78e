"""The database held locked by another process (a backup, the sqlite3 shell) past
busy_timeout while webhooks arrive and deliveries run: everything waits, nothing is lost,
nothing is left half-done, and it all completes once the lock is released — no restart."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp

from tests.shop import Shop

BUYERS = [800_000_001 + n for n in range(6)]


async def healthz(shop: Shop) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"{shop.bot.url}/healthz") as r:
        return r.status, await r.json()


async def test_database_locked_past_busy_timeout_loses_nothing(shop: Shop) -> None:
    """Issue 9 item 1: before, the first write to hit the lock failed ("job 1 could not be
    recorded … database is locked"), that job stayed `running` and its receipt never came."""
    await shop.add_product()
    for user in BUYERS:
        shop.discord.add_member(shop.guild_id, user, dispatch=False)
    sessions = [await shop.buy(user) for user in BUYERS]
    shop.discord.latency = 0.3  # deliveries are in flight when the lock is taken
    for session_id in sessions[:3]:
        await shop.pay(session_id)
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status='running'"),
        "a delivery in flight",
    )
    lock = sqlite3.connect(shop.bot.db_path, timeout=10, isolation_level=None)  # waits its turn
    try:
        lock.execute("BEGIN EXCLUSIVE")
        late = [shop.stripe.complete_checkout(session_id) for session_id in sessions[3:]]
        acks = [asyncio.create_task(shop.sender.send(event)) for event in late]
        await shop.wait(
            lambda: "is locked by another process" in shop.bot.log_text(),
            "the bot waiting out the lock (past busy_timeout)",
        )
        status, body = await healthz(shop)
        assert status == 503 and "locked by another process" in body["down"]["database"]
        assert not any(ack.done() for ack in acks)  # nothing acknowledged that is not stored
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    assert [status for status, _ in await asyncio.gather(*acks)] == [200, 200, 200]
    await shop.wait(lambda: all(shop.has_role(user) for user in BUYERS), "every role", 30)
    await shop.wait(
        lambda: all(len(shop.dms_to(user)) == 1 for user in BUYERS), "every receipt", 30
    )
    assert shop.bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status!='processed'") == 0
    open_jobs = "SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending','running')"
    await shop.wait(lambda: shop.bot.scalar(open_jobs) == 0, "queue drained")
    assert "could not be recorded" not in shop.bot.log_text()
    assert (await healthz(shop))[0] == 200
