"""Reconciliation at startup: a 50k-member guild with 1 % of roles missing and 1 % stale.

`.venv/bin/python -m bench.reconcile [--quick] [--members N] [--runs N]`

Pre-filled with SQL after `shopbot migrate`: product VIP (grant_role VIP) with one paid order,
active entitlement and `granted` ledger row per member (N = 50,000; quick 5,000), and product
Old (grant_role Old) whose entitlements have expired for 1 % of the members. In FakeDiscord,
1 % of the members lack VIP (missing) and another 1 % still hold Old (stale). The bot
reconciles at READY, listing members 1,000 per call, and must fix exactly those 2 % (1,000 at
N = 50,000): PUT VIP for the missing, DELETE Old for the stale, nothing else. No rate limit.

Target: exactly those fixed, about N / 1,000 list calls; the duration is reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import (
    CpuMeter,
    base_parser,
    fakes,
    median,
    migrate,
    report,
    setup_env,
    start_bot,
)
from bench._shop import Prefill, add_members
from tests.harness import BotProcess, wait_until

LIST_ROUTE = "/guilds/{guild_id}/members"
ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


async def one_run(members: int) -> dict[str, float]:
    share = members // 100
    async with fakes() as (discord, stripe, workdir):
        guild = discord.add_guild(name="Bench", owner_id=1001)
        vip = discord.add_role(guild.id, "VIP", position=2)
        old = discord.add_role(guild.id, "Old", position=3)
        missing = add_members(discord, guild.id, share)
        stale = add_members(discord, guild.id, share, roles=[vip.id, old.id], first=share)
        rest = add_members(discord, guild.id, members - 2 * share, roles=[vip.id], first=2 * share)
        bot = BotProcess(workdir, discord, stripe, [guild.id])
        migrate(bot)
        prefill = Prefill(bot.db_path)
        vip_product = prefill.product(guild.id, "VIP", vip.id)
        old_product = prefill.product(guild.id, "Old", old.id)
        prefill.paid_access(guild.id, vip_product, vip.id, missing + stale + rest, "active")
        prefill.paid_access(guild.id, old_product, old.id, stale, "expired")
        prefill.close()
        try:
            start = time.perf_counter()
            await start_bot(bot, discord, [guild.id])
            assert bot.proc is not None
            meter = CpuMeter(bot.proc.pid)

            def fixes() -> list[tuple[float, str, int, int, int]]:
                return [
                    (
                        r.time,
                        r.method,
                        int(r.path.split("/")[4]),
                        int(r.path.split("/")[6]),
                        r.status,
                    )
                    for r in discord.requests
                    if r.route_template == ROLE_ROUTE
                ]

            await wait_until(lambda: len(fixes()) >= 2 * share, 300, "every fix")
            total_s = time.perf_counter() - start
            load = meter.stop()
            await asyncio.sleep(1.0)  # anything extra would show up now
        finally:
            await bot.stop()
        lists = [
            r for r in discord.requests if r.route_template == LIST_ROUTE and r.method == "GET"
        ]
        ops = fixes()
        adds = {(u, role) for _, m, u, role, s in ops if m == "PUT" and s == 204}
        removes = {(u, role) for _, m, u, role, s in ops if m == "DELETE" and s == 204}
        exact = (
            adds == {(u, vip.id) for u in missing}
            and removes == {(u, old.id) for u in stale}
            and len(ops) == 2 * share
        )
        first_list = lists[0].time
        return {
            "members": members,
            "expected fixes": 2 * share,
            "role requests": len(ops),
            "grants (PUT 204)": len(adds),
            "revokes (DELETE 204)": len(removes),
            "exactly the expected fixes": float(exact),
            "member list calls": len(lists),
            "member scan s (first -> last list call)": lists[-1].time - first_list,
            "first list call -> first fix s": min(o[0] for o in ops) - first_list,
            "first list call -> all fixed s": max(o[0] for o in ops) - first_list,
            "bot start -> all fixed s": total_s,
            "foreign cores busy (other tenants)": load["foreign_cores"],
        }


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--members", type=int, default=None, help="guild size (default 50000)")
    args = parser.parse_args()
    setup_env(args.log_level)
    members = args.members or (5_000 if args.quick else 50_000)
    rows = [await one_run(members) for _ in range(args.runs or 1)]
    for row in rows:
        print(row)
    out: dict[str, Any] = {"runs": len(rows)}
    for key in rows[0]:
        out[f"{key} (median)"] = median([row[key] for row in rows])
    out["exact fixes in every run"] = all(row["exactly the expected fixes"] for row in rows)
    report("reconcile", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
