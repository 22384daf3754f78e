"""Fulfilment alone: how fast the inbox applies stored checkout.session.completed events.

`.venv/bin/python -m bench.inbox_apply [--quick] [--runs N] [--events N]`

In-process, unlike the other benchmarks: the unit tier's World (tests/unit/world.py: the
real services and Store on a SQLite file with `synchronous=FULL`, FakeStripe through the
real SDK, no Discord) with `events` paid checkouts stored in the inbox, then `Inbox.run`
until every one is applied and committed (order paid, entitlement, grant job). No HTTP and
no deliveries compete, so the figure is the inbox's own cost: events/s and the process's
CPU time per event (all threads: the aiosqlite thread included). Bodies are parsed from the
stored payloads, as after a restart or a long backlog.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import base_parser, median, report
from tests.unit.world import GUILD, add_product, open_world


async def one_run(events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="shopbot-bench-") as tmp:
        async with open_world(Path(tmp)) as world:
            await add_product(world, "Gold")
            made = []
            for n in range(events):
                order, _ = await world.shop.start_checkout(GUILD, 10_000 + n, "gold")
                made.append(world.stripe.complete_checkout(order.stripe_session_id))
            writer = asyncio.create_task(world.inbox.run_writer())
            try:
                stored = await asyncio.gather(
                    *(world.inbox.receive(e, json.dumps(e).encode()) for e in made)
                )
            finally:
                writer.cancel()
            assert all(stored)
            world.inbox._parsed.clear()  # parse from the store, as after a restart
            cpu, began = time.process_time(), time.perf_counter()
            runner = asyncio.create_task(world.inbox.run())
            try:
                while True:
                    async with world.store.reading() as tx:  # waits for the batch's commit
                        waiting = await tx.events.unprocessed(limit=1)
                    if world.inbox.processed >= events and not waiting:
                        break
                    if time.perf_counter() - began > 300:
                        raise TimeoutError("the inbox did not apply every event in 300 s")
                    await asyncio.sleep(0.005)
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
            paid = world.rows("SELECT COUNT(*) FROM orders WHERE status='paid'")[0][0]
            assert paid == events, f"{paid} of {events} orders paid"
            return {"events_per_s": events / wall, "cpu_ms_per_event": cpu * 1000 / events}


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--events", type=int, default=None, help="events (default 1000)")
    args = parser.parse_args()
    events = args.events or (100 if args.quick else 1000)
    runs = args.runs or (1 if args.quick else 3)
    rows = []
    for n in range(runs):
        rows.append(await one_run(events))
        print(f"run {n + 1}: {rows[-1]}")
    out: dict[str, Any] = {"runs": runs, "events": events}
    for key in rows[0]:
        out[f"{key} (median)"] = median([row[key] for row in rows])
    report("inbox_apply", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
