"""Rate-limited drain: paid orders vs Discord's per-guild member-role bucket (10 per second).

`.venv/bin/python -m bench.ratelimited_drain [--quick] [--orders N] [--guilds G]
[--per-guild P] [--skip-one]`

Phase 1: `orders` (default 1,000; quick 50) paid orders in one guild, all webhooks posted at
once (32 concurrent senders), FakeDiscord's role bucket at `set_role_rate_limit(10, 1.0)`.
Drain time = arrival of the last successful role PUT - first webhook POST, against the
theoretical minimum orders / 10 s; 429s as a share of role requests.
Phase 2: `guilds` (10) guilds x `orders / guilds` orders (quick: 20), each guild with its
own bucket, posted interleaved: one guild's limit must not slow the others, so the total
should be about one guild's minimum. (Real Discord also has a 50 requests/s global limit per
bot, which the fake does not model: 10 guilds x 10 role PUTs/s would exceed it.)

Targets: drain <= 1.05 x minimum, 429s <= 1 % of role requests; phase 2 total ~ one guild's.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench._common import CpuMeter, base_parser, post_all, report, role_puts, setup_env
from bench._shop import paid_shop
from tests.harness import wait_until

LIMIT, WINDOW = 10, 1.0


async def scenario(guilds: int, per_guild: int) -> dict[str, Any]:
    """`guilds` guilds x `per_guild` paid orders under the role bucket; drain figures."""
    async with paid_shop(guilds, per_guild, role_limit=LIMIT) as shop:
        discord, bot = shop.discord, shop.bot
        events = [e for batch in zip(*shop.events, strict=True) for _, e in batch]  # interleaved
        loop = asyncio.get_running_loop()
        since, first_post, wall = len(discord.requests), loop.time(), time.perf_counter()
        assert bot.proc is not None
        meter = CpuMeter(bot.proc.pid)
        acked = await post_all(f"{bot.url}/webhooks/stripe", events)
        post_s = time.perf_counter() - wall
        total = guilds * per_guild

        def done() -> bool:
            return len({u for _, _, u, s in role_puts(discord, since) if s == 204}) >= total

        try:
            await wait_until(done, per_guild / LIMIT * WINDOW * 2 + 60, "every role granted")
        except AssertionError as exc:
            print(f"warning: {exc}")
        load = meter.stop()
        inbox_s = bot.scalar(
            "SELECT (julianday(MAX(processed_at)) - julianday(MIN(received_at))) * 86400"
            " FROM webhook_events"
        )
    puts = role_puts(discord, since)
    ok = [p for p in puts if p[3] == 204]
    minimum = per_guild / LIMIT * WINDOW
    drain = max(p[0] for p in ok) - first_post
    per_guild_drain = [max(p[0] for p in ok if p[1] == g) - first_post for g in shop.guild_ids]
    return {
        "guilds x orders": f"{guilds} x {per_guild}",
        "webhooks acked": acked,
        "posting took s": post_s,
        "roles granted": len({p[2] for p in ok}),
        "theoretical minimum s (per guild)": minimum,
        "fixed-window minimum s (ceil(n/10)-1 windows)": (math.ceil(per_guild / LIMIT) - 1)
        * WINDOW,
        "drain s (first POST -> last role PUT)": drain,
        "drain / minimum": drain / minimum,
        "inbox: first receipt -> last event processed s": inbox_s,
        "slowest guild drain s": max(per_guild_drain),
        "fastest guild drain s": min(per_guild_drain),
        "role requests": len(puts),
        "role 429s": sum(p[3] == 429 for p in puts),
        "429s % of role requests": 100 * sum(p[3] == 429 for p in puts) / max(len(puts), 1),
        "fake invalid_request_count": discord.invalid_request_count,
        "system cores busy": load["system_cores"],
        "foreign cores busy (other tenants)": load["foreign_cores"],
    }


async def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--orders", type=int, default=None, help="orders (default 1000)")
    parser.add_argument("--guilds", type=int, default=10, help="guilds in phase 2")
    parser.add_argument("--per-guild", type=int, default=None, help="phase 2 orders per guild")
    parser.add_argument("--skip-one", action="store_true", help="only phase 2")
    args = parser.parse_args()
    setup_env(args.log_level)
    orders = args.orders or (50 if args.quick else 1000)
    per_guild = args.per_guild or (20 if args.quick else orders // args.guilds)
    out: dict[str, Any] = {}
    if not args.skip_one:
        one = await scenario(1, orders)
        out.update({f"1 guild: {k}": v for k, v in one.items()})
        out["1 guild: drain <= 1.05 x minimum met"] = one["drain / minimum"] <= 1.05
        out["1 guild: 429s <= 1 % met"] = one["429s % of role requests"] <= 1.0
    many = await scenario(args.guilds, per_guild)
    out.update({f"{args.guilds} guilds: {k}": v for k, v in many.items()})
    out[f"{args.guilds} guilds: total <= 1.05 x one guild's minimum met"] = (
        many["drain / minimum"] <= 1.05
    )
    report("ratelimited_drain", out, args.json)


if __name__ == "__main__":
    asyncio.run(main())
