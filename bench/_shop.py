"""Pre-filled shops for the benchmarks: members, products and orders as the bot writes them.

Orders are inserted the way `/buy` leaves them (bot/shop.py start_checkout: pending, with the
Checkout Session id, URL and expiry) and their sessions are created and completed by
FakeStripe, so every webhook event is exactly what Stripe sends for a real purchase; only the
slash-command round trip that creates the order is skipped (it is not on any measured path).
Paid history (orders, entitlements, role ledger) is inserted directly after `shopbot migrate`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import Signed, fakes, migrate, start_bot
from bot.clock import iso
from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.fleet import open_checkout, signed_completions
from tests.harness import BotProcess

USER_BASE = 300_000_000_000_000_000  # member ids: USER_BASE + i (snowflake-sized)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def add_members(
    discord: FakeDiscord, guild_id: int, count: int, roles: Sequence[int] = (), first: int = 0
) -> list[int]:
    """Members USER_BASE+first … USER_BASE+first+count-1 (no gateway events); their ids."""
    ids = [USER_BASE + first + i for i in range(count)]
    for user_id in ids:
        discord.add_member(guild_id, user_id, roles=roles, dispatch=False)
    return ids


def claim_code(n: int) -> str:
    digits = "".join(ALPHABET[(n >> (5 * k)) & 31] for k in range(8))
    return f"{digits[:4]}-{digits[4:]}"


class Prefill:
    """Direct SQLite writes matching bot/store/migrations/*.sql (bot stopped, schema migrated)."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.now = iso(datetime.now(UTC))
        self.conn.execute("BEGIN")

    def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()

    def _next_id(self, table: str) -> int:
        sql = f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"  # noqa: S608 - fixed names
        return int(self.conn.execute(sql).fetchone()[0])

    def product(self, guild_id: int, name: str, role_id: int, price: int = 499) -> int:
        """A one_time product with its grant_role on_purchase action (as /shop product add)."""
        cur = self.conn.execute(
            "INSERT INTO products (guild_id, name, name_key, price_amount, currency, kind,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'usd', 'one_time', ?, ?)",
            (guild_id, name, name.casefold(), price, self.now, self.now),
        )
        product_id = int(cur.lastrowid or 0)
        self.conn.execute(
            "INSERT INTO actions (product_id, type, stage, role_id, created_at)"
            " VALUES (?, 'grant_role', 'on_purchase', ?, ?)",
            (product_id, role_id, self.now),
        )
        return product_id

    def pending_orders(
        self,
        stripe: FakeStripe,
        guild_id: int,
        product_id: int,
        buyers: Sequence[int],
        store: bool = True,
    ) -> list[str]:
        """Pending orders with open Checkout Sessions in the fake, as /buy leaves them.

        With `store=False` only the sessions exist: their events name orders the bot does not
        know (it stores them, then marks them failed: the cheapest processing there is).
        """
        first = self._next_id("orders")
        expires = datetime.now(UTC) + timedelta(minutes=31)
        rows, sessions = [], []
        for n, buyer in enumerate(buyers):
            order_id = first + n
            session = open_checkout(stripe, order_id, guild_id, buyer, product_id, 499, expires)
            sessions.append(session["id"])
            row = (order_id, guild_id, buyer, buyer, product_id, session["id"], session["url"])
            rows.append((*row, iso(expires), self.now, self.now))
        self.conn.executemany(
            "INSERT INTO orders (id, guild_id, buyer_id, recipient_id, product_id, amount,"
            " currency, status, stripe_session_id, checkout_url, checkout_expires_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 499, 'usd', 'pending', ?, ?, ?, ?, ?)",
            rows if store else [],
        )
        return sessions

    def paid_access(
        self, guild_id: int, product_id: int, role_id: int, users: Sequence[int], status: str
    ) -> None:
        """Paid orders + entitlements (`status`) + `granted` role ledger rows, one per user."""
        order0, ent0 = self._next_id("orders"), self._next_id("entitlements")
        orders, ents, grants = [], [], []
        for n, user in enumerate(users):
            oid, eid = order0 + n, ent0 + n
            orders.append((oid, guild_id, user, user, product_id, f"cs_bench_{oid}"))
            orders[-1] += (f"pi_bench_{oid}", claim_code(oid), self.now, self.now, self.now)
            ents.append((eid, guild_id, user, product_id, oid, status, self.now, self.now))
            ents[-1] += (self.now,)
            grants.append((guild_id, user, role_id, eid, self.now))
        self.conn.executemany(
            "INSERT INTO orders (id, guild_id, buyer_id, recipient_id, product_id, amount,"
            " currency, status, stripe_session_id, stripe_payment_intent_id, claim_code,"
            " created_at, paid_at, updated_at) VALUES (?, ?, ?, ?, ?, 499, 'usd', 'paid',"
            " ?, ?, ?, ?, ?, ?)",
            orders,
        )
        self.conn.executemany(
            "INSERT INTO entitlements (id, guild_id, user_id, product_id, order_id, status,"
            " starts_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ents,
        )
        self.conn.executemany(
            "INSERT INTO role_grants (guild_id, user_id, role_id, entitlement_id, status,"
            " granted_at) VALUES (?, ?, ?, ?, 'granted', ?)",
            grants,
        )


def paid_events(stripe: FakeStripe, sessions: Sequence[str]) -> list[Signed]:
    """FakeStripe completes each checkout; the `checkout.session.completed` events, signed."""
    return signed_completions(stripe, sessions)


@dataclass
class PaidShop:
    """A running bot whose guilds each have `per_guild` pending orders, events ready to send."""

    discord: FakeDiscord
    bot: BotProcess
    guild_ids: list[int]
    #: per guild: (buyer id, signed `checkout.session.completed`) for each of its orders
    events: list[list[tuple[int, Signed]]]


@asynccontextmanager
async def paid_shop(
    guilds: int, per_guild: int, role_limit: int | None = None, store_orders: bool = True
) -> AsyncIterator[PaidShop]:
    """Fakes + `guilds` guilds (VIP role, product, members, pending orders) + a started bot."""
    async with fakes() as (discord, stripe, workdir):
        discord.set_role_rate_limit(role_limit, 1.0)
        made = [discord.add_guild(name=f"Bench {g}", owner_id=1001) for g in range(guilds)]
        bot = BotProcess(workdir, discord, stripe, [g.id for g in made])
        migrate(bot)
        prefill = Prefill(bot.db_path)
        events = []
        for n, guild in enumerate(made):
            role = discord.add_role(guild.id, "VIP", position=2).id
            buyers = add_members(discord, guild.id, per_guild, first=n * per_guild)
            product = prefill.product(guild.id, "VIP", role)
            sessions = prefill.pending_orders(stripe, guild.id, product, buyers, store_orders)
            signed = paid_events(stripe, sessions)
            events.append(list(zip(buyers, signed, strict=True)))
        prefill.close()
        # These payments happen after the bot has started (the benchmark POSTs each one):
        # Stripe would not list them yet. Listed, the bot's startup catch-up
        # (bot/stripe_sync.py) stores and applies every run's events at once, racing the
        # measured path (and later runs then see only duplicates).
        stripe.events.clear()
        try:
            await start_bot(bot, discord, [g.id for g in made])
            yield PaidShop(discord, bot, [g.id for g in made], events)
        finally:
            await bot.stop()
