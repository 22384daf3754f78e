"""Shared fixtures: the local fakes of Stripe and Discord, a running shopbot against them,
and a throwaway PostgreSQL server (started on first use, once per session)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.pg_server import TEMPLATE, PgServer, running_server
from tests.shop import Shop, open_shop

pytest_plugins = ["tests.fakes.discord.fixtures", "tests.fakes.stripe.fixtures"]


@pytest_asyncio.fixture
async def shop(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> AsyncIterator[Shop]:
    """A guild with an admin, a buyer and a VIP role, and `shopbot run` connected to it."""
    async with open_shop(tmp_path, fake_discord, fake_stripe) as running:
        yield running


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """PostgreSQL from the system's binaries in a temp dir on a free port, with a migrated
    template database; stopped and deleted at the end of the session (tests/pg_server.py)."""
    with running_server() as server:
        asyncio.run(_migrated_template(server))
        yield server


async def _migrated_template(server: PgServer) -> None:
    from bot.store.pg import PgDatabase

    admin = await asyncpg.connect(server.url("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    database = PgDatabase(server.url(TEMPLATE))
    await database.open()  # runs bot/store/migrations_pg
    await database.close()


@pytest_asyncio.fixture
async def pg_url(pg_server: PgServer) -> str:
    """A fresh, migrated PostgreSQL database of this test's own."""
    name = pg_server.fresh_name()
    admin = await asyncpg.connect(pg_server.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
    finally:
        await admin.close()
    return pg_server.url(name)
