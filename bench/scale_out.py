"""Scale-out: 1, 2 and 4 `shopbot run` processes over 16 shards on one PostgreSQL database.

`.venv/bin/python -m bench.scale_out [--quick] [--processes 1,2,4] [--shards 16]
[--guilds 10000] [--orders 30000] [--max-concurrency 16] [--chaos] [--runs N] [--json PATH]`

Starts its own PostgreSQL (tests/pg_server.py, the system's binaries), FakeDiscord (the
sharded gateway refusing a too-early IDENTIFY, the member-role bucket at 10/s per guild)
and FakeStripe, then for each process count: a fresh migrated database, `guilds` guilds
spread over the shards (`(id >> 22) % shards` takes every value), `orders` pending orders
round-robin over them written as /buy leaves them (tests/fleet.py `prefill`: COPY into
PostgreSQL, the sessions open in FakeStripe), the processes started at once over
contiguous shard ranges (`--shard-count S --shard-ids a-b`), and once all are healthy with
every shard READY the checkouts are completed and their signed `checkout.session.completed`
webhooks posted (32 senders) to the processes in turn. Measured: start-up (first process
started -> all healthy and every shard READY), deliveries/s (orders / first webhook POST ->
the last 2xx role PUT), RSS per process after the drain. Checked from the fakes' records
and the database (tests/fleet.py `check_run`): every grant_role job completed exactly once,
exactly one 2xx role PUT per job (linked by the bot's audit-log reason "shopbot: order
#N"), zero 429s (the role bucket never exceeded), each guild's role PUTs in its job order
and only from the process owning its shard, every buyer holding the role, every event
processed.

`--chaos` (with 2+ processes): once a third of the roles are given, SIGKILL the last
process, restart it, and terminate the server side of one LISTEN connection (if any
process holds one; else that step is reported as skipped); then the same checks, with
duplicated role PUTs allowed up to the jobs the killed process held running at the kill.

Until cross-process wake-ups land, a job queued by one process for a guild another owns
waits for the owner's next poll (at most 30 s): the drain wait is generous and the
throughput with 2+ processes reflects that polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench._common import CpuMeter, base_parser, fakes, report, rss_mb, setup_env
from bot.store.pg import PgDatabase
from tests.fleet import (
    Fleet,
    check_run,
    job_counts,
    paid_events,
    post_spread,
    prefill,
    role_puts,
    spread_guild_ids,
    wait_until_async,
)
from tests.harness import wait_until
from tests.pg_server import PgServer, running_server

ROLE_LIMIT = 10  # Discord's member-role bucket, per guild per second


async def fresh_database(server: PgServer, name: str) -> str:
    admin = await asyncpg.connect(server.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database = PgDatabase(server.url(name))
    await database.open()  # runs bot/store/migrations_pg
    await database.close()
    return server.url(name)


async def terminate_listen(url: str) -> str:
    """Terminate one LISTEN connection server-side; what happened."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'"
            " AND datname = current_database()"
        )
        if not rows:
            return "skipped: no process holds a LISTEN connection"
        await conn.execute("SELECT pg_terminate_backend($1)", rows[0]["pid"])
        return f"terminated backend {rows[0]['pid']} (of {len(rows)} LISTEN connections)"
    finally:
        await conn.close()


async def chaos(
    fleet: Fleet, url: str, orders: int, since: int, out: dict[str, Any], crashed: set[int]
) -> None:
    """Kill the last process once a third of the roles are given, restart it, cut LISTEN.
    `crashed` gets the guilds of the jobs it held running."""
    discord = fleet.discord
    await wait_until(
        lambda: sum(200 <= r.status < 300 for r in role_puts(discord, since)) >= orders // 3,
        600,
        "a third of the roles given",
    )
    victim = fleet.bots[-1]
    assert victim.proc is not None
    pid = victim.proc.pid
    victim.kill()
    out["killed at roles given"] = sum(200 <= r.status < 300 for r in role_puts(discord, since))
    conn = await asyncpg.connect(url)
    try:
        held = await conn.fetch(
            "SELECT guild_id FROM delivery_jobs WHERE status='running' AND lease_owner LIKE $1",
            f"%:{pid}:%",
        )
        out["jobs in flight at the kill"] = len(held)
        crashed.update(row["guild_id"] for row in held)
    finally:
        await conn.close()
    started = time.perf_counter()
    await victim.start(wait=False)
    await victim.wait_healthy(timeout=300)
    out["restart -> healthy s"] = time.perf_counter() - started
    out["LISTEN connection"] = await terminate_listen(url)


async def scenario(
    server: PgServer,
    processes: int,
    shards: int,
    guilds: int,
    orders: int,
    max_concurrency: int,
    with_chaos: bool,
    run: int,
) -> dict[str, Any]:
    url = await fresh_database(server, f"scale_{processes}_{run}")
    out: dict[str, Any] = {}
    async with fakes() as (discord, stripe, workdir):
        gateway = discord.gateway
        gateway.shard_count = shards
        gateway.max_concurrency = max_concurrency
        gateway.enforce_identify_rate = True
        discord.set_role_rate_limit(ROLE_LIMIT, 1.0)
        discord.set_global_rate_limit(50, 1.0)  # Discord's, for the whole fleet
        wall = time.perf_counter()
        purchases = await prefill(url, discord, stripe, spread_guild_ids(guilds, shards), orders)
        out["prefill s"] = time.perf_counter() - wall
        fleet = await Fleet.create(workdir, discord, stripe, url, shards, processes)
        try:
            wall = time.perf_counter()
            await fleet.start(timeout=600)
            out["startup s (all healthy, every shard READY)"] = time.perf_counter() - wall
            events = paid_events(stripe, purchases)
            pids = [bot.proc.pid for bot in fleet.bots if bot.proc is not None]
            meter = None if with_chaos else CpuMeter(*pids)  # a killed pid has no /proc
            since, loop = len(discord.requests), asyncio.get_running_loop()
            first_post, wall = loop.time(), time.perf_counter()
            chaos_task, crashed = None, set[int]()
            if with_chaos and processes > 1:
                chaos_task = asyncio.create_task(chaos(fleet, url, orders, since, out, crashed))
            acked, retries = await post_spread(fleet.webhook_urls, events, timeout=900)
            out["webhooks acked"], out["webhook POSTs retried"] = acked, retries
            out["posting took s"] = time.perf_counter() - wall

            async def drained() -> bool:
                counts = await job_counts(url)
                return counts.get("completed", 0) >= orders and not counts.get("open")

            try:
                await wait_until_async(drained, orders / 20 + 300, "every job done", every=0.5)
            except AssertionError as exc:
                out["drain"] = f"FAILED: {exc}: {await job_counts(url)}"
            if chaos_task is not None:
                await chaos_task
            load = meter.stop() if meter is not None else None
            ok = [r for r in role_puts(discord, since) if 200 <= r.status < 300]
            drain = max((r.time for r in ok), default=first_post) - first_post
            out["first POST -> last role PUT s"] = drain
            out["deliveries/s (orders / that)"] = orders / drain if drain else float("nan")
            live = [bot.proc.pid for bot in fleet.bots if bot.proc is not None]
            for index, pid in enumerate(live):
                out[f"RSS MB process {index}"] = rss_mb(pid)
                out[f"peak RSS MB process {index}"] = rss_mb(pid, "VmHWM")
            if load is not None:
                out["system cores busy"] = load["system_cores"]
                out["foreign cores busy (other tenants)"] = load["foreign_cores"]
            checks = await check_run(
                fleet,
                url,
                purchases,
                since,
                allowed_duplicates=out.get("jobs in flight at the kill", 0),
            )
            out.update(checks.figures)
            out["problems"] = "; ".join(checks.problems) or "none"
            rss = "/".join(f"{out[f'RSS MB process {i}']:.0f}" for i in range(len(live)))
            out["summary"] = (
                f"{processes} proc: {out['deliveries/s (orders / that)']:.0f} deliveries/s,"
                f" start-up {out['startup s (all healthy, every shard READY)']:.1f} s,"
                f" RSS {rss} MB"
            )
            tracebacks = sum(bot.log_text().count("Traceback") for bot in fleet.bots)
            out["tracebacks in the bot logs"] = tracebacks
        finally:
            await fleet.stop()
    return out


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of numbers over the runs; other values from the last run."""
    result: dict[str, Any] = {}
    for key, value in runs[-1].items():
        values = [r[key] for r in runs if key in r]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        result[key if len(runs) == 1 or not numeric else f"{key} (median)"] = (
            statistics.median(values) if numeric and len(runs) > 1 else value
        )
    return result


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--processes", default=None, help="process counts (default 1,2,4)")
    parser.add_argument("--shards", type=int, default=None, help="shard count (default 16)")
    parser.add_argument("--guilds", type=int, default=None, help="guilds (default 10000)")
    parser.add_argument("--orders", type=int, default=None, help="orders (default 30000)")
    parser.add_argument(
        "--max-concurrency", type=int, default=16, help="the gateway's IDENTIFY max_concurrency"
    )
    parser.add_argument("--chaos", action="store_true", help="kill + restart, cut LISTEN")
    args = parser.parse_args()
    setup_env(args.log_level)
    counts = [int(n) for n in (args.processes or ("2" if args.quick else "1,2,4")).split(",")]
    shards = args.shards or (8 if args.quick else 16)
    guilds = args.guilds or (200 if args.quick else 10_000)
    orders = args.orders or (400 if args.quick else 30_000)
    out: dict[str, Any] = {
        "shards, guilds, orders": f"{shards}, {guilds}, {orders}",
        "IDENTIFY max_concurrency": args.max_concurrency,
        "load average before (uptime)": _uptime(),
    }
    with running_server() as server:
        for processes in counts:
            runs = [
                await scenario(
                    server, processes, shards, guilds, orders, args.max_concurrency,
                    args.chaos, run,
                )
                for run in range(args.runs or 1)
            ]  # fmt: skip
            out.update({f"{processes} proc: {k}": v for k, v in merged(runs).items()})
    out["load average after (uptime)"] = _uptime()
    failed = [k for k, v in out.items() if k.endswith("problems") and v != "none"]
    out["every check met"] = not failed and not any(
        isinstance(v, str) and v.startswith("FAILED") for v in out.values()
    )
    report("scale_out", out, args.json)


def _uptime() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S607
    return Path("/proc/loadavg").read_text().strip()


if __name__ == "__main__":
    asyncio.run(main())
