"""Webhook ingest: acknowledged Stripe events/s and ack latency, against a bare aiohttp ceiling.

`.venv/bin/python -m bench.webhook_ingest [--quick] [--runs N] [--duration S] [--rate R]`

Each event is a signed `checkout.session.completed` for a distinct pending order of a real
guild member (see bench/_shop.py), so the bot fully processes what it acknowledges (order
paid, entitlement, role PUT and receipt DM to FakeDiscord) while the load goes on.
Per run, on a fresh bot: closed loop, 32 concurrent senders for `duration` s (10; quick 2)
against `bench._bare_server` (a separate process whose handler only reads the body and
returns 200: the ceiling), then against the bot, so each ratio comes from the same moment;
then the bot is SIGKILLed and every acknowledged event id must be in its database (stored
durably before its 200). On a second fresh bot: an open loop paced at 200 events/s (bare,
then bot), latency measured from the actual send. `--unknown-orders` sends events for orders
the bot does not know instead (stored and acknowledged the same way, then marked failed):
the receive path without the cost of fulfilment competing for the database.

Targets: throughput >= 40 % of the bare handler; p99 ack <= 20 ms at 200 events/s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import (
    CpuMeter,
    Signed,
    base_parser,
    cpu_seconds,
    median,
    pct,
    report,
    setup_env,
    sleep_until,
)
from bench._profile import Profiler, print_summary
from bench._shop import paid_shop
from tests.harness import free_port

Result = dict[str, float]


async def closed_loop(
    url: str, events: Iterator[Signed], concurrency: int, duration: float, acked: list[str]
) -> Result:
    """`concurrency` senders, each POSTing the next event until `duration` or events run out."""
    latencies: list[float] = []
    errors = 0

    async def sender(session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal errors
        for payload, headers in events:
            if time.perf_counter() >= deadline:
                return
            start = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - start)
                    acked.append(json.loads(payload)["id"])
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        begin = time.perf_counter()
        await asyncio.gather(*(sender(session, begin + duration) for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    return {
        "acks_per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
        "errors": errors,
        "elapsed_s": elapsed,
    }


async def paced(url: str, events: Iterator[Signed], rate: float, duration: float) -> Result:
    """Open loop: one event every 1/rate s, whatever the answers; latency from actual send."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    late: list[float] = []

    async def send(session: aiohttp.ClientSession, due: float, event: Signed) -> None:
        start = time.perf_counter()
        late.append(loop.time() - due)
        async with session.post(url, data=event[0], headers=event[1]) as response:
            await response.read()
            if response.status == 200:
                latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        begin, tasks = loop.time() + 0.05, []
        for i in range(int(rate * duration)):
            due = begin + i / rate
            await sleep_until(loop, due)
            tasks.append(asyncio.ensure_future(send(session, due, next(events))))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return {
        "acks": len(latencies),
        "p50_ms": pct(latencies, 50) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
        "max_ms": max(latencies, default=float("nan")) * 1e3,
        "sender_late_p99_ms": pct(late, 99) * 1e3,
    }


async def wait_port(port: int) -> None:
    async def connect() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    for _ in range(200):
        if await connect():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("bare server did not start")


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--duration", type=float, default=None, help="seconds per closed run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0, help="paced events/s")
    parser.add_argument(
        "--unknown-orders",
        action="store_true",
        help="events for orders the bot does not know (stored, then marked failed cheaply)",
    )
    parser.add_argument("--max-rate", type=int, default=1200, help="events prepared per second")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the bot's first closed run into this"
    )
    args = parser.parse_args()
    setup_env(args.log_level)
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 10.0)
    paced_s = 2.0 if args.quick else 10.0
    closed_pool, paced_pool = int(duration * args.max_rate), int(args.rate * paced_s)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench._bare_server", str(port)])  # noqa: S603
    bare_url = f"http://127.0.0.1:{port}/webhooks/stripe"
    rows: list[dict[str, Result]] = []
    try:
        await wait_port(port)
        for run in range(runs):
            row: dict[str, Result] = {}
            unknown = args.unknown_orders
            async with paid_shop(1, closed_pool, store_orders=not unknown) as shop:
                events = [event for _, event in shop.events[0]]
                assert shop.bot.proc is not None
                pid, url = shop.bot.proc.pid, f"{shop.bot.url}/webhooks/stripe"
                meter = CpuMeter(bare.pid)
                row["bare"] = await closed_loop(
                    bare_url, itertools.cycle(events[:500]), args.concurrency, duration, []
                )
                row["bare"].update(meter.stop())
                acked: list[str] = []
                meter, cpu0 = CpuMeter(pid), cpu_seconds(pid)
                profiler = (
                    Profiler(pid, args.profile, duration) if args.profile and not run else None
                )
                bot = row["bot"] = await closed_loop(
                    url, iter(events), args.concurrency, duration, acked
                )
                bot.update(meter.stop())
                if profiler is not None and profiler.stop():
                    print_summary(profiler.path)
                bot["bot_cpu_pct"] = (cpu_seconds(pid) - cpu0) / bot["elapsed_s"] * 100
                bot["ratio"] = bot["acks_per_s"] / row["bare"]["acks_per_s"]
                bot["pool_exhausted"] = len(acked) + bot["errors"] >= len(events)
                bot["processed_during_run"] = shop.bot.scalar(
                    "SELECT COUNT(*) FROM webhook_events WHERE status!='received'"
                )
                shop.bot.kill()  # SIGKILL: what was acknowledged must already be on disk
                stored = {r[0] for r in shop.bot.query("SELECT id FROM webhook_events")}
                bot["acked"] = len(acked)
                bot["acked_missing_after_kill"] = sum(a not in stored for a in acked)
            async with paid_shop(1, paced_pool, store_orders=not unknown) as shop:
                events = [event for _, event in shop.events[0]]
                assert shop.bot.proc is not None
                meter = CpuMeter(bare.pid)
                row["bare_paced"] = await paced(
                    bare_url, itertools.cycle(events), args.rate, paced_s
                )
                row["bare_paced"].update(meter.stop())
                meter = CpuMeter(shop.bot.proc.pid)
                url = f"{shop.bot.url}/webhooks/stripe"
                row["bot_paced"] = await paced(url, iter(events), args.rate, paced_s)
                row["bot_paced"].update(meter.stop())
                row["bot_paced"]["processed_by_end"] = shop.bot.scalar(
                    "SELECT COUNT(*) FROM webhook_events WHERE status!='received'"
                )
            rows.append(row)
            for key, value in row.items():
                print(f"run {run + 1} {key:<10} {value}")
    finally:
        bare.terminate()
        bare.wait(10)
    out: dict[str, Any] = {"runs": runs, "closed_s": duration, "paced_s": paced_s}
    out["events for"] = "unknown orders" if args.unknown_orders else "pending orders (full flow)"
    for side in ("bare", "bot", "bare_paced", "bot_paced"):
        for key in rows[0][side]:
            out[f"{side} {key} (median)"] = median([row[side][key] for row in rows])
    out["acked events missing after SIGKILL (all runs)"] = sum(
        row["bot"]["acked_missing_after_kill"] for row in rows
    )
    out["throughput >= 40 % of bare met"] = out["bot ratio (median)"] >= 0.40
    out["paced p99 <= 20 ms met"] = out["bot_paced p99_ms (median)"] <= 20.0
    report("webhook_ingest", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
