"""Issue 9 item 2: a transiently failed event is retried with bounded backoff; only an event
that can never apply stays `failed`; `shopbot events retry` puts failed ones back in line."""

from __future__ import annotations

import sqlite3
from typing import Any

from bot import maintenance
from bot.inbox import EVENT_ATTEMPTS, retry_delay
from tests.unit.world import BUYER, GUILD, ROLE, World, add_product

EVENT = "checkout.session.completed"


def failing(world: World, times: int) -> list[int]:
    """Make the checkout handler fail `times` times as a broken disk would; count the calls."""
    original = world.domain.dispatcher.handlers[EVENT]
    calls = [0]

    async def flaky(tx: Any, event: dict[str, Any], obj: dict[str, Any]) -> int | None:
        calls[0] += 1
        if calls[0] <= times:
            raise sqlite3.OperationalError("disk I/O error")
        return await original(tx, event, obj)

    world.domain.dispatcher.handlers[EVENT] = flaky
    return calls


async def pay(world: World) -> int:
    await add_product(world, "gold")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    world.stripe.complete_checkout(order.stripe_session_id)
    await world.flush()
    return order.id


async def event_row(world: World) -> tuple[str, int, str | None, str | None]:
    rows = world.rows(
        "SELECT status, attempts, last_error, next_attempt_at FROM webhook_events"
        f" WHERE type='{EVENT}'"
    )
    assert len(rows) == 1
    return rows[0]


async def due_now(world: World) -> None:
    """Process what the inbox loop would process now."""
    async with world.store.reading() as tx:
        due = await tx.events.unprocessed()
    for stored in due:
        await world.inbox.process(stored.id, stored.payload)


async def test_failed_events_are_retried_with_backoff(world: World) -> None:
    """A transient failure keeps the event in line; after the backoff it applies, once."""
    calls = failing(world, times=2)
    order_id = await pay(world)
    status, attempts, error, next_at = await event_row(world)
    assert next_at is not None
    assert (status, attempts) == ("received", 1) and error and "disk I/O error" in error
    assert (await world.order(order_id)).status == "pending"
    async with world.store.reading() as tx:
        assert await tx.events.unprocessed() == []  # waiting out its backoff, not spinning
        assert await tx.events.next_retry_at() == world.clock.now() + retry_delay(1)

    world.advance(seconds=retry_delay(1).total_seconds())
    await due_now(world)
    assert (await event_row(world))[:2] == ("received", 2)
    world.advance(seconds=retry_delay(2).total_seconds())
    await due_now(world)
    assert (await event_row(world))[0] == "processed"
    assert (await world.order(order_id)).status == "paid"
    await world.run_jobs()
    assert ROLE in world.discord.roles[BUYER]
    await due_now(world)  # nothing due any more: the handler is not called again
    assert calls[0] == 3


async def test_retries_are_bounded(world: World) -> None:
    """An event that fails every time gives up after EVENT_ATTEMPTS tries and stays failed."""
    calls = failing(world, times=10_000)
    await pay(world)
    for _ in range(EVENT_ATTEMPTS + 3):
        world.advance(hours=1)
        await due_now(world)
    status, attempts, error, _ = await event_row(world)
    assert (status, attempts, calls[0]) == ("failed", EVENT_ATTEMPTS, EVENT_ATTEMPTS)
    assert error and "disk I/O error" in error
    assert sum(retry_delay(n).total_seconds() for n in range(1, EVENT_ATTEMPTS)) < 12 * 3600


async def test_event_that_can_never_apply_stays_failed(world: World) -> None:
    """No order of ours: failed at once, with the reason, and never tried again by itself."""
    session = {"id": "cs_elsewhere", "object": "checkout.session", "client_reference_id": "999",
               "payment_status": "paid", "mode": "payment", "metadata": {}}  # fmt: skip
    await world.deliver(world.stripe.make_event(EVENT, session))
    status, attempts, error, next_at = await event_row(world)
    assert (status, attempts, next_at) == ("failed", 1, None)
    assert error and "no order of ours" in error
    world.advance(days=1)
    async with world.store.reading() as tx:
        assert await tx.events.unprocessed() == []


async def test_events_retry_reruns_failed_ones(world: World) -> None:
    """After the cause is fixed, `shopbot events retry` applies the failed event, once."""
    failing(world, times=EVENT_ATTEMPTS)
    order_id = await pay(world)
    for _ in range(EVENT_ATTEMPTS):
        world.advance(hours=1)
        await due_now(world)
    assert (await event_row(world))[0] == "failed"
    assert (await world.order(order_id)).status == "pending"

    retried, outcome = await maintenance.retry_failed_events(world.store, world.settings)
    assert (retried, outcome) == (1, "1 processed")
    assert (await world.order(order_id)).status == "paid"
    assert (await maintenance.retry_failed_events(world.store, world.settings)) == (0, "none")
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(1,)]
