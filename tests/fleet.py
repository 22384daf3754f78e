"""A fleet of `shopbot run` processes over shard ranges on one PostgreSQL database, a shop
pre-filled with pending orders across many guilds, and the checks made from the fakes'
records afterwards. Shared by tests/pg/test_scale_smoke.py and bench/scale_out.py.

Orders are inserted the way `/buy` leaves them (bot/shop.py start_checkout: pending, with
the Checkout Session id, URL and expiry; as bench/_shop.py does on SQLite) and FakeStripe
creates and completes their sessions, so every webhook is what Stripe sends for a real
purchase. Each process talks to FakeDiscord through a port of its own
(`FakeDiscord.add_listener`), so every request the fake records says which process sent it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bot.clock import iso
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.gateway import shard_of
from tests.fakes.discord.ratelimit import ROLE_ROUTE
from tests.fakes.stripe import FakeStripe, encode_event, sign_payload
from tests.fakes.stripe.webhooks import STRIPE_WEBHOOK_HEADERS
from tests.harness import WEBHOOK_SECRET, BotProcess

USER_BASE = 300_000_000_000_000_000  # buyer ids: USER_BASE + n (snowflake-sized)
PUBLIC = "http://127.0.0.1"
PRICE = 499
REASON = re.compile(r"shopbot: order #(\d+)$")
Signed = tuple[bytes, dict[str, str]]
PRODUCT_COLUMNS = [
    "id",
    "guild_id",
    "name",
    "name_key",
    "price_amount",
    "currency",
    "kind",
    "created_at",
    "updated_at",
]
ORDER_COLUMNS = [
    "id",
    "guild_id",
    "buyer_id",
    "recipient_id",
    "product_id",
    "amount",
    "currency",
    "status",
    "stripe_session_id",
    "checkout_url",
    "checkout_expires_at",
    "created_at",
    "updated_at",
]


def spread_guild_ids(count: int, shard_count: int) -> list[int]:
    """`count` snowflakes whose shards `(id >> 22) % shard_count` take turns 0, 1, 2, …"""
    # (10_000_000 * shard_count + n) % shard_count == n % shard_count
    return [((10_000_000 * shard_count + n) << 22) | 7 for n in range(count)]


def shard_ranges(shard_count: int, processes: int) -> list[range]:
    """Contiguous, near-equal shard ranges, one per process."""
    bounds = [shard_count * p // processes for p in range(processes + 1)]
    return [range(bounds[p], bounds[p + 1]) for p in range(processes)]


@dataclass(frozen=True)
class Purchase:
    """One pending order, its buyer and role, and its open Checkout Session."""

    order_id: int
    guild_id: int
    user_id: int
    role_id: int
    session_id: str


def open_checkout(
    stripe: FakeStripe,
    order_id: int,
    guild_id: int,
    buyer: int,
    product_id: int,
    amount: int,
    expires: datetime,
) -> dict[str, Any]:
    """The Checkout Session `/buy` opens for a pending order (its metadata as the bot writes
    it), in FakeStripe (also bench/_shop.py's)."""
    meta = {
        "order_id": str(order_id),
        "guild_id": str(guild_id),
        "user_id": str(buyer),
        "recipient_id": str(buyer),
        "product_id": str(product_id),
    }
    return stripe.create_checkout_session(
        {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": amount,
                        "product_data": {"name": "VIP"},
                    },
                    "quantity": 1,
                }
            ],
            "client_reference_id": str(order_id),
            "metadata": meta,
            "success_url": f"{PUBLIC}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{PUBLIC}/checkout/cancel?order={order_id}",
            "expires_at": int(expires.timestamp()),
            "payment_intent_data": {"metadata": meta},
        }
    )


async def prefill(
    url: str, discord: FakeDiscord, stripe: FakeStripe, guild_ids: Sequence[int], orders: int
) -> list[Purchase]:
    """Guilds (VIP role, a one_time product granting it) in the fake and the database, and
    `orders` pending orders spread round-robin over them, each with an open Checkout
    Session in FakeStripe (`paid_events` completes them: do it once the bot runs, or its
    start-up catch-up with Stripe's event list applies them before any webhook is sent).

    Writes the rows bot/shop.py writes, with COPY (the database is migrated, no bot running),
    then moves the id sequences past them."""
    now = iso(datetime.now(UTC))
    expires = datetime.now(UTC) + timedelta(minutes=31)
    roles: dict[int, int] = {}
    products, actions, rows = [], [], []
    purchases = []
    for n, guild_id in enumerate(guild_ids, start=1):
        discord.add_guild(name=f"Fleet {n}", owner_id=1001, guild_id=guild_id, dispatch=False)
        roles[guild_id] = discord.add_role(guild_id, "VIP", position=2).id
        products.append((n, guild_id, "VIP", "vip", PRICE, "usd", "one_time", now, now))
        actions.append((n, n, "grant_role", "on_purchase", roles[guild_id], now))
    product_of = {guild_id: n for n, guild_id in enumerate(guild_ids, start=1)}
    for order_id in range(1, orders + 1):
        guild_id = guild_ids[(order_id - 1) % len(guild_ids)]
        buyer = USER_BASE + order_id
        discord.add_member(guild_id, buyer, dispatch=False)
        session = open_checkout(
            stripe, order_id, guild_id, buyer, product_of[guild_id], PRICE, expires
        )
        row = (order_id, guild_id, buyer, buyer, product_of[guild_id], PRICE, "usd", "pending")
        rows.append((*row, session["id"], session["url"], iso(expires), now, now))
        purchases.append(Purchase(order_id, guild_id, buyer, roles[guild_id], session["id"]))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "products",
                records=products,
                columns=PRODUCT_COLUMNS,
            )
            await conn.copy_records_to_table(
                "actions",
                records=actions,
                columns=["id", "product_id", "type", "stage", "role_id", "created_at"],
            )
            await conn.copy_records_to_table(
                "orders",
                records=rows,
                columns=ORDER_COLUMNS,
            )
            for table in ("products", "actions", "orders"):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT MAX(id) FROM {table}))"
                )
    finally:
        await conn.close()
    return purchases


def paid_events(stripe: FakeStripe, purchases: Sequence[Purchase]) -> list[Signed]:
    """FakeStripe completes each checkout; the `checkout.session.completed` events, signed."""
    return signed_completions(stripe, [purchase.session_id for purchase in purchases])


def signed_completions(stripe: FakeStripe, sessions: Sequence[str]) -> list[Signed]:
    """FakeStripe completes each Checkout Session; the events, signed as Stripe signs them
    (also bench/_shop.py's)."""
    signed = []
    for session_id in sessions:
        payload = encode_event(stripe.complete_checkout(session_id))
        headers = {
            **STRIPE_WEBHOOK_HEADERS,
            "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET),
        }
        signed.append((payload, headers))
    return signed


@dataclass
class Fleet:
    """`shopbot run` processes, each over a contiguous shard range, on one database."""

    discord: FakeDiscord
    shard_count: int
    bots: list[BotProcess]
    ranges: list[range]
    #: FakeDiscord port → index of the process that uses it
    ports: dict[int, int] = field(default_factory=dict)

    @classmethod
    async def create(
        cls,
        workdir: Path,
        discord: FakeDiscord,
        stripe: FakeStripe,
        url: str,
        shard_count: int,
        processes: int,
    ) -> Fleet:
        ranges = shard_ranges(shard_count, processes)
        bots, ports = [], {}
        for index, shards in enumerate(ranges):
            api_base = await discord.add_listener()
            ports[int(api_base.split(":")[2].split("/")[0])] = index
            (workdir / f"p{index}").mkdir(exist_ok=True)
            bots.append(
                BotProcess(
                    workdir / f"p{index}",
                    discord,
                    stripe,
                    [],
                    env={"SHOPBOT_DATABASE__URL": url, "SHOPBOT_DISCORD__API_BASE": api_base},
                    run_args=[
                        *("--shard-count", str(shard_count)),
                        *("--shard-ids", f"{shards.start}-{shards.stop - 1}"),
                    ],
                )
            )
        return cls(discord, shard_count, bots, ranges, ports)

    async def start(self, timeout: float = 120.0) -> None:
        """Start every process at once; wait until all are healthy and every shard READY."""
        for bot in self.bots:
            await bot.start(wait=False)
        for bot in self.bots:
            await bot.wait_healthy(timeout=timeout)
        await self.discord.gateway.wait_shards_ready(set(range(self.shard_count)), timeout)

    async def stop(self) -> None:
        for bot in self.bots:
            await bot.stop()

    def owner(self, guild_id: int) -> int:
        """The index of the process whose shards hold the guild."""
        shard = shard_of(guild_id, self.shard_count)
        return next(i for i, shards in enumerate(self.ranges) if shard in shards)

    @property
    def webhook_urls(self) -> list[str]:
        return [f"{bot.url}/webhooks/stripe" for bot in self.bots]


async def post_spread(
    urls: Sequence[str], events: Sequence[Signed], concurrency: int = 32, timeout: float = 300
) -> tuple[int, int]:
    """POST each event to the processes in turn, `concurrency` at a time; a refused or
    failed delivery goes to the next process, as Stripe retries. (200s, retries)."""
    queue = iter(enumerate(events))
    ok = retries = 0
    deadline = asyncio.get_running_loop().time() + timeout

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal ok, retries
        for n, (payload, headers) in queue:
            for attempt in itertools.count():
                url = urls[(n + attempt) % len(urls)]
                try:
                    async with session.post(url, data=payload, headers=headers) as response:
                        await response.read()
                        if response.status == 200:
                            ok += 1
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                retries += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"event {n} was not acknowledged by any process")
                await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout_cfg = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout_cfg) as session:
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    return ok, retries


async def wait_until_async(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.2
) -> None:
    """Poll a condition that needs I/O (a database query) until it holds; fail on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def job_counts(url: str) -> dict[str, int]:
    """grant_role jobs by status, and every job not completed yet ("open")."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT kind, status, COUNT(*) FROM delivery_jobs GROUP BY kind, status"
        )
    finally:
        await conn.close()
    counts: dict[str, int] = Counter()
    for kind, status, n in rows:
        if kind == "grant_role":
            counts[status] += n
        if status not in ("completed", "failed", "canceled", "expired"):
            counts["open"] += n
    return dict(counts)


@dataclass
class Checks:
    """What the fakes and the database say about a finished run."""

    figures: dict[str, Any]
    problems: list[str]


def role_puts(discord: FakeDiscord, since: int = 0) -> list[Any]:
    return [
        r for r in discord.requests[since:] if r.method == "PUT" and r.route_template == ROLE_ROUTE
    ]


async def check_run(
    fleet: Fleet,
    url: str,
    purchases: Sequence[Purchase],
    since: int = 0,
    allowed_duplicates: int = 0,
    owners_known: bool = True,
    crashed_guilds: frozenset[int] = frozenset(),
) -> Checks:
    """Every grant_role job completed exactly once, one 2xx role PUT per job (at most
    `allowed_duplicates` extra, after a crash), no 429, each guild's role PUTs in job order
    and (with `owners_known`) only from its owner process, every buyer holding the role.

    `crashed_guilds`: guilds with a job a killed process held running; the jobs queued
    behind it may run before it (it waits for its lease to run out), which is counted
    apart and not a problem here."""
    discord = fleet.discord
    conn = await asyncpg.connect(url)
    try:
        jobs = await conn.fetch(
            "SELECT j.id, j.guild_id, j.order_id, j.status, (SELECT COUNT(*) FROM job_attempts"
            " a WHERE a.job_id=j.id AND a.outcome='completed') AS completions,"
            " (SELECT COUNT(*) FROM job_attempts a WHERE a.job_id=j.id) AS attempts"
            " FROM delivery_jobs j WHERE j.kind='grant_role' ORDER BY j.id"
        )
        paid = await conn.fetchval("SELECT COUNT(*) FROM orders WHERE status='paid'")
        unprocessed = await conn.fetchval(
            "SELECT COUNT(*) FROM webhook_events WHERE status <> 'processed'"
        )
    finally:
        await conn.close()
    puts = role_puts(discord, since)
    ok_puts = [r for r in puts if 200 <= r.status < 300]
    per_order = Counter(int(m.group(1)) for r in ok_puts if (m := REASON.match(r.reason or "")))
    problems: list[str] = []
    expected = {p.order_id for p in purchases}
    job_orders = [j["order_id"] for j in jobs]
    if sorted(job_orders) != sorted(expected):
        problems.append(
            f"grant_role jobs for {len(set(job_orders) & expected)} of {len(expected)} orders"
            f" ({len(job_orders)} jobs)"
        )
    not_done = [j["id"] for j in jobs if j["status"] != "completed"]
    if not_done:
        problems.append(f"{len(not_done)} grant_role jobs not completed: {not_done[:5]}")
    twice = [j["id"] for j in jobs if j["completions"] != 1]
    if twice:
        problems.append(f"{len(twice)} jobs without exactly one completed attempt: {twice[:5]}")
    missing = sorted(expected - set(per_order))
    if missing:
        problems.append(f"{len(missing)} orders without a 2xx role PUT: {missing[:5]}")
    duplicated = sum(n - 1 for n in per_order.values() if n > 1)
    if duplicated > allowed_duplicates:
        problems.append(
            f"{duplicated} duplicated role PUTs (allowed {allowed_duplicates}):"
            f" {[o for o, n in per_order.items() if n > 1][:5]}"
        )
    limited = [r for r in discord.requests[since:] if r.status == 429]
    if limited:
        problems.append(
            f"{len(limited)} 429s ({Counter(r.route_template for r in limited).most_common(3)})"
        )
    # Each guild's role PUTs in the order of its jobs (a duplicate repeats an earlier one).
    job_rank = {j["order_id"]: rank for rank, j in enumerate(jobs)}
    out_of_order = []
    by_guild: dict[int, list[int]] = defaultdict(list)
    for r in ok_puts:
        if m := REASON.match(r.reason or ""):
            order = int(m.group(1))
            seq = by_guild[int(r.path.split("/")[2])]
            if order not in seq:
                seq.append(order)
    for guild_id, seq in by_guild.items():
        ranks = [job_rank.get(o, -1) for o in seq]
        if ranks != sorted(ranks):
            out_of_order.append(guild_id)
    unexplained = [g for g in out_of_order if g not in crashed_guilds]
    if unexplained:
        problems.append(f"{len(unexplained)} guilds' role PUTs not in job order")
    foreign = 0
    if owners_known:
        foreign = sum(
            1 for r in puts if fleet.ports.get(r.port) != fleet.owner(int(r.path.split("/")[2]))
        )
        if foreign:
            problems.append(f"{foreign} role PUTs sent by a process not owning the guild")
    lacking = [
        p.order_id for p in purchases if not discord.has_role(p.guild_id, p.user_id, p.role_id)
    ]
    if lacking:
        problems.append(f"{len(lacking)} buyers without their role: orders {lacking[:5]}")
    if paid != len(expected):
        problems.append(f"{paid} orders paid, expected {len(expected)}")
    if unprocessed:
        problems.append(f"{unprocessed} webhook events not processed")
    windows: Counter[tuple[int, int]] = Counter(
        (int(r.path.split("/")[2]), int(r.time)) for r in ok_puts
    )
    figures = {
        "grant_role jobs": len(jobs),
        "jobs completed exactly once": len(jobs) - len(twice) - len(not_done),
        "job attempts": sum(j["attempts"] for j in jobs),
        "2xx role PUTs": len(ok_puts),
        "duplicated role PUTs": duplicated,
        "role requests": len(puts),
        "429s": len(limited),
        "guilds out of job order": len(out_of_order),
        "of them with a job in flight at a kill": len(out_of_order) - len(unexplained),
        "role PUTs from a non-owner process": foreign if owners_known else "not checked",
        "most 2xx role PUTs of one guild in one clock second": max(windows.values(), default=0),
        "buyers without their role": len(lacking),
        "webhook events not processed": unprocessed,
    }
    return Checks(figures, problems)
