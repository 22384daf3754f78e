"""Payment to role: time from the Stripe webhook POST to the role PUT arriving at Discord.

`.venv/bin/python -m bench.payment_to_role [--quick] [--runs N] [--rate R] [--duration S]`

Open loop: `rate` purchases/s (default 50) for `duration` s, each a signed
`checkout.session.completed` for a distinct pending order of a distinct guild member
(see bench/_shop.py). No Discord rate limit. The POST time and the fake's arrival time of
`PUT /guilds/{g}/members/{u}/roles/{r}` come from the same event-loop clock (FakeDiscord runs
in this process), matched by member id. The inbox and queue are drained between runs.

Targets: p50 <= 30 ms, p99 <= 100 ms.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench._common import (
    CpuMeter,
    Signed,
    base_parser,
    cpu_seconds,
    drain,
    median,
    pct,
    report,
    role_puts,
    setup_env,
    sleep_until,
)
from bench._shop import paid_shop
from tests.fakes.discord import FakeDiscord
from tests.harness import BotProcess, wait_until


async def one_run(
    bot: BotProcess, discord: FakeDiscord, events: list[tuple[int, Signed]], rate: float
) -> dict[str, float]:
    """Send `events` (buyer, event) at `rate`/s; return latency figures for this run."""
    loop = asyncio.get_running_loop()
    posted: dict[int, float] = {}
    acks: list[float] = []
    since = len(discord.requests)

    async def send(session: aiohttp.ClientSession, buyer: int, event: Signed) -> None:
        posted[buyer] = loop.time()
        start = time.perf_counter()
        async with session.post(f"{bot.url}/webhooks/stripe", data=event[0], headers=event[1]) as r:
            await r.read()
            if r.status == 200:
                acks.append(time.perf_counter() - start)

    assert bot.proc is not None
    cpu0, wall0, meter = cpu_seconds(bot.proc.pid), time.perf_counter(), CpuMeter(bot.proc.pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        begin, tasks = loop.time() + 0.05, []
        for i, (buyer, event) in enumerate(events):
            await sleep_until(loop, begin + i / rate)
            tasks.append(asyncio.ensure_future(send(session, buyer, event)))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    buyers = set(posted)

    def granted() -> dict[int, float]:
        first: dict[int, float] = {}
        for when, _, user, status in role_puts(discord, since):
            if status == 204 and user in buyers:
                first.setdefault(user, when)
        return first

    try:
        await wait_until(lambda: len(granted()) == len(buyers), 120, "every role PUT")
    except AssertionError as exc:
        print(f"warning: {exc}")
    cpu = (cpu_seconds(bot.proc.pid) - cpu0) / (time.perf_counter() - wall0) * 100
    lat = [when - posted[user] for user, when in granted().items()]
    load = meter.stop()
    return {
        "purchases": len(events),
        "roles granted": len(lat),
        "p50_ms": pct(lat, 50) * 1e3,
        "p90_ms": pct(lat, 90) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "max_ms": max(lat, default=float("nan")) * 1e3,
        "ack_p50_ms": pct(acks, 50) * 1e3,
        "ack_p99_ms": pct(acks, 99) * 1e3,
        "bot_cpu_pct": cpu,
        **load,
    }


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="purchases/s")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    args = parser.parse_args()
    setup_env(args.log_level)
    runs = args.runs or (1 if args.quick else 3)
    per_run = int(args.rate * (args.duration or (2.0 if args.quick else 10.0)))
    out: dict[str, Any] = {"runs": runs, "rate_per_s": args.rate, "purchases_per_run": per_run}
    rows = []
    async with paid_shop(1, runs * per_run) as shop:
        pairs = shop.events[0]
        for run in range(runs):
            batch = pairs[run * per_run : (run + 1) * per_run]
            row = await one_run(shop.bot, shop.discord, batch, args.rate)
            row["drain_after_s"] = await drain(shop.bot, 120)
            rows.append(row)
            print(f"run {run + 1}: {row}")
    for key in rows[0]:
        out[f"{key} (median)"] = median([row[key] for row in rows])
    out["roles granted (all runs)"] = sum(int(row["roles granted"]) for row in rows)
    out["p50 target <= 30 ms met"] = out["p50_ms (median)"] <= 30.0
    out["p99 target <= 100 ms met"] = out["p99_ms (median)"] <= 100.0
    report("payment_to_role", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
