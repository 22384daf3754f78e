"""Issue 15: a webhook's acknowledgement never queues behind background transactions, a burst
is stored in one statement and one commit, and each body is parsed once."""

from __future__ import annotations

import asyncio
import json

from tests.unit.world import World


def _event(n: int) -> dict[str, object]:
    return {"id": f"evt_perf_{n}", "type": "customer.created", "created": 1, "object": "event"}


async def test_webhook_ack_goes_before_queued_background_work(world: World) -> None:
    """Issue 15: with the database busy and background work queued for it, a webhook is
    committed (and answered) as soon as the current holder lets go, before that work."""
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with world.store.transaction():
            holding.set()
            await release.wait()

    async def background() -> None:
        async with world.store.transaction():
            order.append("background")

    async def webhook() -> None:
        event = _event(1)
        assert await world.inbox.receive(event, json.dumps(event).encode())
        order.append("webhook")

    held = asyncio.create_task(holder())
    await asyncio.wait_for(holding.wait(), 5)
    queued = asyncio.create_task(background())
    for _ in range(5):
        await asyncio.sleep(0)  # the background transaction is now waiting for the lock
    acked = asyncio.create_task(webhook())
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(held, queued, acked), 5)
    assert order == ["webhook", "background"]


async def test_webhook_burst_stored_in_one_statement_with_duplicates(world: World) -> None:
    """Issue 15: concurrent webhooks share one INSERT and one commit; a repeated id, in the
    burst or stored before, is reported as a duplicate and stored once."""
    writer = asyncio.create_task(world.inbox.run_writer())
    first = _event(0)
    assert await world.inbox.receive(first, json.dumps(first).encode())
    statements: list[str] = []
    await world.store.db.conn.set_trace_callback(statements.append)
    try:
        burst = [_event(n) for n in (1, 2, 0, 3, 2)]
        results = await asyncio.wait_for(
            asyncio.gather(*(world.inbox.receive(e, json.dumps(e).encode()) for e in burst)), 5
        )
    finally:
        await world.store.db.conn.set_trace_callback(None)
        writer.cancel()
    assert results == [True, True, False, True, False]
    assert sum(s.startswith("INSERT INTO webhook_events") for s in statements) == 1
    assert statements.count("COMMIT") == 1
    async with world.store.reading() as tx:
        assert await tx.events.count() == 4
