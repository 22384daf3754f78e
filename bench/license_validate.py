"""License validation: validations/s and latency of POST /api/v1/licenses/validate, against
a bare aiohttp handler's ceiling.

`.venv/bin/python -m bench.license_validate [--quick] [--runs N] [--duration S] [--keys K]`

The real `shopbot run` with K delivered license keys (paid orders with active entitlements,
written as the bot writes them), each already bound to the machine that checks it, and one API
key of scope `licenses`; 32 concurrent clients (client n owns the keys n, n+32, …, on hwid
`hw-n`) validate random keys of theirs for `duration` s (10; quick 2), after the same closed
loop against `bench._bare_server` (reads the body, answers JSON) in the same run. That is a
shop's steady state: licensed software checking its key at every start; binding happens once
per machine. A tenth of the calls use unknown keys (they must answer `unknown`), a twentieth
another client's key (`device_limit`). The rate limits are set high for the measurement
(`[api]` in the bot's config); every answer must be a 200 with the expected status, or the
run fails.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import base_parser, fakes, median, migrate, pct, report, setup_env, start_bot
from bench._profile import Profiler, print_summary
from bench._shop import Prefill, add_members
from bench.webhook_ingest import wait_port
from bot.api.keys import hash_key
from tests.harness import BotProcess, free_port

CONCURRENCY = 32
UNLIMITED = """
[api]
rate_limit_per_minute = 100000
license_validations_per_key_per_minute = 1000000
license_validations_per_client_per_minute = 1000000
"""


def license_key(n: int) -> str:
    return f"BENCH-{n:06d}-{n * 7919 % 1_000_003:07d}"


def prefill_licenses(bot: BotProcess, guild_id: int, users: list[int]) -> str:
    """A product whose keys went to `users` (one paid order and active entitlement each),
    and an API key of scope `licenses`; that key."""
    prefill = Prefill(bot.db_path)
    product = prefill.product(guild_id, "App", 0)
    prefill.conn.execute("DELETE FROM actions WHERE product_id=?", (product,))
    first_order = prefill._next_id("orders")
    prefill.paid_access(guild_id, product, 0, users, "active")
    prefill.conn.execute("DELETE FROM role_grants")
    first_key = prefill._next_id("license_keys")
    prefill.conn.executemany(
        "INSERT INTO license_keys (id, product_id, key, order_id, delivered_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (first_key + n, product, license_key(n), first_order + n, prefill.now, prefill.now)
            for n in range(len(users))
        ],
    )
    prefill.conn.executemany(
        "INSERT INTO license_devices (license_id, hwid, bound_at, last_seen_at)"
        " VALUES (?, ?, ?, ?)",
        [
            (first_key + n, f"hw-{n % CONCURRENCY}", prefill.now, prefill.now)
            for n in range(len(users))
        ],
    )
    api_key = "sbk_" + secrets.token_urlsafe(32)
    prefill.conn.execute(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at)"
        " VALUES ('bench', ?, ?, 'licenses', ?)",
        (api_key[:12], hash_key(api_key), prefill.now),
    )
    prefill.close()
    return api_key


async def closed_loop(
    url: str, headers: dict[str, str], keys: int, duration: float, check: bool
) -> dict[str, float]:
    """CONCURRENCY clients, each validating random keys (a tenth unknown) until `duration`."""
    latencies: list[float] = []
    wrong: list[Any] = []

    async def client(session: aiohttp.ClientSession, n: int, deadline: float) -> None:
        rng = random.Random(n)  # noqa: S311 - load, not secrets
        while time.perf_counter() < deadline:
            draw = rng.random()
            unknown, foreign = draw < 0.1, 0.1 <= draw < 0.15
            owner = (n + 1) % CONCURRENCY if foreign else n
            mine = range(owner, keys, CONCURRENCY)
            key = f"NOPE-{rng.randrange(10**9)}" if unknown else license_key(rng.choice(mine))
            body = json.dumps({"key": key, "hwid": f"hw-{n}"})
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
            latencies.append(time.perf_counter() - start)
            if check:
                status = json.loads(answer).get("status") if response.status == 200 else None
                expected = "unknown" if unknown else "device_limit" if foreign else "active"
                if status != expected:
                    wrong.append((response.status, answer[:200]))

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        begin = time.perf_counter()
        await asyncio.gather(*(client(session, n, begin + duration) for n in range(CONCURRENCY)))
        elapsed = time.perf_counter() - begin
    if wrong:
        raise SystemExit(f"{len(wrong)} wrong answers, e.g. {wrong[:3]}")
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
    }


async def one_run(keys: int, duration: float, profile: Path | None = None) -> dict[str, float]:
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench._bare_server", str(port)])  # noqa: S603
    try:
        await wait_port(port)
        async with fakes() as (discord, stripe, workdir):
            guild = discord.add_guild(name="Bench", owner_id=1001)
            users = add_members(discord, guild.id, keys)
            bot = BotProcess(workdir, discord, stripe, [guild.id], extra=UNLIMITED)
            migrate(bot)
            api_key = prefill_licenses(bot, guild.id, users)
            try:
                await start_bot(bot, discord, [guild.id])
                plain = {"Content-Type": "application/json"}
                ceiling = await closed_loop(
                    f"http://127.0.0.1:{port}/webhooks/stripe", plain, keys, duration, False
                )
                auth = {**plain, "Authorization": f"Bearer {api_key}"}
                url = f"{bot.url}/api/v1/licenses/validate"
                assert bot.proc is not None
                profiler = Profiler(bot.proc.pid, profile, duration) if profile else None
                measured = await closed_loop(url, auth, keys, duration, True)
                if profiler is not None and profiler.stop():
                    print_summary(profiler.path)
            finally:
                await bot.stop()
    finally:
        bare.terminate()
        bare.wait(10)
    return {
        "bare per_s": ceiling["per_s"],
        "validate per_s": measured["per_s"],
        "validate ratio to bare": measured["per_s"] / ceiling["per_s"],
        "validate p50_ms": measured["p50_ms"],
        "validate p99_ms": measured["p99_ms"],
    }


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--duration", type=float, default=None, help="seconds per loop")
    parser.add_argument("--keys", type=int, default=None, help="delivered keys (default 5000)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the bot in the first run (raw file)"
    )
    args = parser.parse_args()
    setup_env(args.log_level)
    duration = args.duration or (2.0 if args.quick else 10.0)
    keys = args.keys or (500 if args.quick else 5_000)
    runs = args.runs or (1 if args.quick else 3)
    rows = [await one_run(keys, duration, args.profile if not n else None) for n in range(runs)]
    for row in rows:
        print(row)
    out: dict[str, Any] = {"runs": len(rows), "keys": keys, "concurrency": CONCURRENCY}
    for key in rows[0]:
        out[f"{key} (median)"] = median([row[key] for row in rows])
    report("license_validate", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
