"""Shared plumbing for the benchmarks: fakes, bot start, posting, /proc readings, statistics.

Everything runs on 127.0.0.1: the real `shopbot run` subprocess (tests.harness.BotProcess)
against FakeDiscord and FakeStripe, which live in this (driver) process together with the
load generator, so the bot and the driver get about one core each on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.ratelimit import ROLE_ROUTE
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, shopbot_command, wait_until

Signed = tuple[bytes, dict[str, str]]


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI smoke)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (median reported)")
    parser.add_argument("--log-level", default="INFO", help="the bot's log level (default INFO)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser


def setup_env(log_level: str) -> None:
    """The bot inherits our environment: run it at the production log level."""
    os.environ["SHOPBOT_LOG__LEVEL"] = log_level


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeStripe, Path]]:
    """Started fakes (OpenAPI validation off: the test suite checks it) and a temp dir."""
    discord = FakeDiscord(token="bench-token", validate=False)  # noqa: S106 - fake
    stripe = FakeStripe(secret_key="sk_test_bench")  # noqa: S106 - fake
    with tempfile.TemporaryDirectory(prefix="shopbot-bench-") as tmp:
        await discord.start()
        await stripe.start()
        try:
            yield discord, stripe, Path(tmp)
        finally:
            await stripe.stop()
            await discord.stop()


def migrate(bot: BotProcess) -> None:
    """`shopbot migrate` with the bot's config: creates the schema before pre-filling."""
    env = {k: v for k, v in os.environ.items() if k != "SHOPBOT_CONFIG"}
    command = [*shopbot_command(), "--config", str(bot.config_path), "migrate"]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=60)  # noqa: S603


async def start_bot(bot: BotProcess, discord: FakeDiscord, guild_ids: Sequence[int]) -> None:
    """Start and wait until healthy (gateway READY) and every guild's commands are synced."""
    await bot.start()
    await wait_until(
        lambda: all(g in discord.synced_commands for g in guild_ids), 30, "commands synced"
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "?",
    )  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0]}


def report(name: str, results: dict[str, Any], path: Path | None) -> None:
    """Print `results` (and write them as JSON to `path` if given)."""
    print(f"\n== {name} ({time.strftime('%Y-%m-%d %H:%M:%S')}) {machine()}")
    for key, value in results.items():
        print(f"  {key:<44} {value:.2f}" if isinstance(value, float) else f"  {key:<44} {value}")
    if path is not None:
        path.write_text(json.dumps({"bench": name, "machine": machine(), **results}, indent=2))


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def drain(bot: BotProcess, timeout: float) -> float:
    """Wait (bounded) until the inbox and the delivery queue are empty; return the wait."""
    start = time.perf_counter()
    await wait_until(
        lambda: (
            bot.scalar(
                "SELECT (SELECT COUNT(*) FROM webhook_events WHERE status='received')"
                " + (SELECT COUNT(*) FROM delivery_jobs WHERE status IN ('pending','running'))"
            )
            == 0
        ),
        timeout,
        "inbox and queue drained",
    )
    return time.perf_counter() - start


def role_puts(discord: FakeDiscord, since: int = 0) -> list[tuple[float, int, int, int]]:
    """(arrival time, guild, user, status) of every role PUT the fake received after `since`."""
    found = []
    for record in discord.requests[since:]:
        if record.method == "PUT" and record.route_template == ROLE_ROUTE:
            parts = record.path.split("/")  # /guilds/G/members/U/roles/R
            found.append((record.time, int(parts[2]), int(parts[4]), record.status))
    return found


async def post_all(url: str, events: Sequence[Signed], concurrency: int = 32) -> int:
    """POST every event with `concurrency` senders; return how many got a 200."""
    queue = iter(events)
    ok = 0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for payload, headers in queue:
            async with session.post(url, data=payload, headers=headers) as response:
                await response.read()
                ok += response.status == 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    return ok


class CpuMeter:
    """System-wide CPU use over a window, and how much of it was not ours (other tenants).

    This machine is shared: a `foreign_cores` figure well above 0 means the run was disturbed.
    """

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = time.process_time() + sum(cpu_seconds(pid) for pid in self.pids)
        return time.perf_counter(), busy, own

    def stop(self) -> dict[str, float]:
        end = self._read()
        wall, busy, own = (b - a for a, b in zip(self.start, end, strict=True))
        return {"system_cores": busy / wall, "foreign_cores": max(busy - own, 0.0) / wall}
