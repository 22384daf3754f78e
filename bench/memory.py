"""Memory: RSS of the `shopbot run` process after READY, by guild size and database size.

`.venv/bin/python -m bench.memory [--quick] [--runs N]`

Each scenario is a fresh bot: a guild whose FakeDiscord member_count is 1k, 10k or 100k
(the bot does not chunk; every member already holds the role, so the startup reconciliation
pages through the whole member list but has nothing to fix), and 1k members with 100k paid
orders (entitlements and role ledger rows pre-filled with SQL after `shopbot migrate`).
RSS is VmRSS from /proc/PID/status, sampled 5 times over 1 s once the startup
reconciliation has logged its result; VmHWM (peak) is reported too.

Target: RSS growth from 1k to 100k members <= 10 MB; the idle RSS is the 1k-member figure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import (
    base_parser,
    fakes,
    median,
    migrate,
    report,
    rss_mb,
    setup_env,
    start_bot,
)
from bench._shop import USER_BASE, Prefill, add_members
from tests.harness import BotProcess, wait_until


async def measure(members: int, orders: int) -> tuple[float, float, float]:
    """(RSS MB after READY + reconciliation, peak RSS MB, seconds from start to that point)."""
    async with fakes() as (discord, stripe, workdir):
        guild = discord.add_guild(name="Bench", owner_id=1001)
        vip = discord.add_role(guild.id, "VIP", position=2)
        add_members(discord, guild.id, members, roles=[vip.id])
        bot = BotProcess(workdir, discord, stripe, [guild.id])
        migrate(bot)
        prefill = Prefill(bot.db_path)
        product = prefill.product(guild.id, "VIP", vip.id)
        if orders:
            users = [USER_BASE + i for i in range(orders)]
            prefill.paid_access(guild.id, product, vip.id, users, "active")
        prefill.close()
        try:
            start = time.perf_counter()
            await start_bot(bot, discord, [guild.id])
            await wait_until(lambda: "reconciled guild" in bot.log_text(), 120, "reconciliation")
            ready_s = time.perf_counter() - start
            assert bot.proc is not None
            await asyncio.sleep(1.0)
            samples = []
            for _ in range(5):
                samples.append(rss_mb(bot.proc.pid))
                await asyncio.sleep(0.2)
            return median(samples), rss_mb(bot.proc.pid, "VmHWM"), ready_s
        finally:
            await bot.stop()


async def main() -> None:
    parser = base_parser(__doc__)
    args = parser.parse_args()
    setup_env(args.log_level)
    runs = args.runs or (1 if args.quick else 3)
    scenarios = [(1_000, 0), (10_000, 0), (100_000, 0), (1_000, 100_000)]
    if args.quick:
        scenarios = [(1_000, 0), (10_000, 0), (1_000, 10_000)]
    out: dict[str, Any] = {"runs": runs}
    rss: dict[tuple[int, int], float] = {}
    for members, orders in scenarios:
        found = [await measure(members, orders) for _ in range(runs)]
        label = f"{members // 1000}k members, {orders // 1000}k orders"
        rss[members, orders] = median([f[0] for f in found])
        out[f"{label}: RSS MB (median)"] = rss[members, orders]
        out[f"{label}: peak RSS MB (median)"] = median([f[1] for f in found])
        out[f"{label}: start -> reconciled s"] = median([f[2] for f in found])
        print(f"{label}: {found}")
    out["idle RSS MB (1k members, empty shop)"] = rss[1_000, 0]
    biggest = max(m for m, o in rss if o == 0)
    growth = rss[biggest, 0] - rss[1_000, 0]
    out[f"growth 1k -> {biggest // 1000}k members MB"] = growth
    orders_key = max(rss, key=lambda k: k[1])
    out[f"growth from {orders_key[1] // 1000}k orders MB"] = rss[orders_key] - rss[1_000, 0]
    out["members growth <= 10 MB met"] = growth <= 10.0
    report("memory", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
