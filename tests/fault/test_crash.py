"""SIGKILL in the middle of a purchase burst: no event lost, no order fulfilled twice."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from typing import Any

import aiohttp

from tests.fakes.discord.fake_interaction import MESSAGE_KINDS, FakeInteraction
from tests.harness import wait_until
from tests.shop import Shop, checkout_url, text_of

BUYERS = 300  # distinct members buying at once (the figure)
FIRST_BUYER = 700_000_001
CONCURRENCY = 16  # buyers in flight at any moment
KILL_AFTER_ACKS = BUYERS // 2  # SIGKILL once half of the payment events were acknowledged
DUPLICATE_EVERY = 5  # Stripe-like redelivery of every 5th acknowledged event
LATE_PAYER_EVERY = 10  # every 10th buyer pays while the bot is down (delivery refused)
ORDER_IN_DM = re.compile(r"Order #(\d+)")


def answer(inter: FakeInteraction) -> dict[str, Any] | None:
    """The first message the bot answered this interaction with (not the 'thinking' one)."""
    for record in inter.responses:
        carries = any(k in record["data"] for k in ("content", "embeds", "components"))
        if record["kind"] in MESSAGE_KINDS and record["message"] is not None and carries:
            return record["message"]
    return None


class Burst:
    """Buyers buying and paying concurrently, a Stripe-like webhook sender, and the crash."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.up = asyncio.Event()
        self.up.set()
        self.killed = asyncio.Event()
        self.epoch = 0  # bumped at the kill: interactions sent before it may be lost
        self.events: dict[str, dict[str, Any]] = {}  # every event Stripe created, by id
        self.acked: set[str] = set()
        self.statuses: Counter[int | None] = Counter()  # None = refused / aborted
        self.sessions: dict[int, str] = {}  # buyer → the session they paid
        self.lost_interactions = 0
        self.at_kill: dict[str, int] = {}

    async def buy(self, user: int) -> str:
        """/buy until a link comes back (an interaction in flight at the kill is lost)."""
        for _ in range(4):
            await self.up.wait()
            epoch = self.epoch
            inter = await self.shop.discord.invoke_command(
                self.shop.guild_id, user, "buy", {"product": "VIP"}, permissions="0"
            )
            got = await wait_until(
                lambda inter=inter, epoch=epoch: answer(inter) or self.epoch != epoch,
                timeout=20,
                what=f"/buy answer for {user}",
            )
            message = answer(inter)
            if message is None:
                assert got is True
                self.lost_interactions += 1
                continue
            assert inter.is_ephemeral(), "the checkout link was sent publicly"
            url = checkout_url(message)
            assert url, f"/buy for {user} answered without a link: {text_of(message)}"
            return url.rstrip("/").split("/")[-1]
        raise AssertionError(f"/buy for {user} never answered")

    async def deliver(self, event_id: str) -> int | None:
        """POST the stored event like Stripe; anything but a 200 is retried later."""
        try:
            status, _ = await self.shop.sender.send(self.events[event_id])
        except (aiohttp.ClientError, OSError, TimeoutError):
            status = None
        self.statuses[status] += 1
        if status == 200:
            self.acked.add(event_id)
        return status

    async def purchase(self, user: int, slots: asyncio.Semaphore, late: bool) -> None:
        async with slots:
            session_id = await self.buy(user)
        if late:  # still on Stripe's payment page when the bot dies
            await self.killed.wait()
        event = self.shop.stripe.complete_checkout(session_id)
        self.sessions[user] = session_id
        self.events[event["id"]] = event
        await self.deliver(event["id"])

    async def crash_and_restart(self) -> None:
        await wait_until(lambda: len(self.acked) >= KILL_AFTER_ACKS, 60, "half the events acked")
        self.up.clear()
        self.epoch += 1
        self.shop.bot.kill()
        self.killed.set()
        bot = self.shop.bot
        self.at_kill = {
            "acked": len(self.acked),
            "stored": bot.scalar("SELECT COUNT(*) FROM webhook_events"),
            "processed": bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='processed'"),
            "jobs_completed": bot.scalar(
                "SELECT COUNT(*) FROM delivery_jobs WHERE status='completed'"
            ),
            "jobs_running": bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status='running'"),
        }
        await bot.start()
        self.up.set()

    async def redeliver_until_acked(self, timeout: float = 30.0) -> int:
        """Resend every event not acknowledged with a 200 (Stripe retries them for days)."""
        deadline = time.monotonic() + timeout
        resent = 0
        while missing := [e for e in self.events if e not in self.acked]:
            assert time.monotonic() < deadline, f"{len(missing)} events never acknowledged"
            resent += len(missing)
            await asyncio.gather(*(self.deliver(e) for e in missing))
        return resent


async def test_sigkill_mid_burst_loses_nothing_and_fulfils_once(shop: Shop) -> None:
    """SIGKILL amid 300 concurrent purchases + webhooks: every event processed, each order once."""
    started = time.monotonic()
    await shop.add_product()
    buyers = [FIRST_BUYER + i for i in range(BUYERS)]
    for user in buyers:
        shop.discord.add_member(shop.guild_id, user, dispatch=False)
    burst = Burst(shop)
    slots = asyncio.Semaphore(CONCURRENCY)
    crash = asyncio.create_task(burst.crash_and_restart())
    try:
        await asyncio.gather(
            *(
                burst.purchase(u, slots, late=i % LATE_PAYER_EVERY == 0)
                for i, u in enumerate(buyers)
            )
        )
        await crash
    finally:
        crash.cancel()
    refused = sum(1 for e in burst.events if e not in burst.acked)
    assert burst.statuses[None] > 0, "no delivery failed: the kill did not land mid-burst"
    resent = await burst.redeliver_until_acked()
    duplicates = sorted(burst.acked)[::DUPLICATE_EVERY]
    for event_id in duplicates:
        status, body = await shop.sender.send(burst.events[event_id])
        assert status == 200 and json.loads(body)["duplicate"] is True, (status, body)

    bot = shop.bot
    await shop.wait(
        lambda: (
            bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='processed'")
            == len(burst.events)
        ),
        "every event processed",
        timeout=30,
    )
    await shop.wait(
        lambda: bot.scalar("SELECT COUNT(*) FROM delivery_jobs WHERE status != 'completed'") == 0,
        "queue drained",
        timeout=30,
    )
    await shop.wait(lambda: all(shop.has_role(u) for u in buyers), "every buyer has the role")

    # No event lost: every id Stripe created is in the inbox, processed.
    stored = {r["id"]: r["status"] for r in bot.query("SELECT id, status FROM webhook_events")}
    assert stored.keys() == burst.events.keys()
    assert set(stored.values()) == {"processed"}
    assert set(burst.statuses) <= {200, None}, f"the webhook answered {burst.statuses}"

    # Every paid order: paid once, one entitlement for its buyer, one set of jobs.
    orders = {
        r["stripe_session_id"]: r for r in bot.query("SELECT * FROM orders WHERE status='paid'")
    }
    assert set(orders) == set(burst.sessions.values())
    assert {orders[s]["buyer_id"] for s in burst.sessions.values()} == set(buyers)
    entitlements = bot.query("SELECT order_id, user_id, status FROM entitlements")
    assert len(entitlements) == BUYERS
    by_order = {r["order_id"]: r for r in entitlements}
    for order in orders.values():
        assert by_order[order["id"]]["user_id"] == order["buyer_id"]
        assert by_order[order["id"]]["status"] == "active"
    paid_audits = Counter(
        r[0]
        for r in bot.query(
            "SELECT json_extract(detail, '$.order_id') FROM audit_log WHERE kind='order.paid'"
        )
    )
    assert set(paid_audits.values()) == {1} and len(paid_audits) == BUYERS
    jobs = Counter(
        (r["order_id"], r["kind"])
        for r in bot.query(
            "SELECT order_id, kind FROM delivery_jobs WHERE kind='receipt'"
            " OR json_extract(payload, '$.stage')='on_purchase'"
        )
    )
    assert set(jobs.values()) == {1} and len(jobs) == 2 * BUYERS

    # Effects on Discord: at least once, at most once more for the one job in flight.
    role_puts = Counter(op[2] for op in shop.discord.role_ops if op[0] == "add" and op[-1] == 204)
    assert set(role_puts) == set(buyers)
    assert max(role_puts.values()) <= 2, role_puts.most_common(3)
    receipts = Counter(
        int(m.group(1))
        for _, dm in shop.discord.dms
        if (m := ORDER_IN_DM.search(dm.get("content") or ""))
    )
    assert set(receipts) == {o["id"] for o in orders.values()}
    # One guild → one job at a time → at most one receipt was in flight at the kill.
    resent_receipts = [order for order, n in receipts.items() if n > 1]
    assert max(receipts.values()) <= 2 and len(resent_receipts) <= 1, receipts.most_common(3)

    print(
        f"\nburst: {BUYERS} buyers, {len(burst.events)} events, killed at {burst.at_kill}, "
        f"{refused} refused/aborted deliveries ({resent} resends), {len(duplicates)} duplicates, "
        f"{burst.lost_interactions} lost /buy interactions, "
        f"{sum(role_puts.values()) - BUYERS} repeated role PUTs, "
        f"{len(resent_receipts)} repeated receipts, {time.monotonic() - started:.1f}s"
    )
