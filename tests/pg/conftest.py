"""The PostgreSQL tier: the same store and services on a throwaway PostgreSQL server.

`world` here is tests/unit/world.py's World on PostgreSQL, so unit tests imported into
these modules run unchanged against the second backend; `store` is parametrized over both
backends for the contract tests. `pytest -q` (the README's command, CI) runs this folder;
`pytest -q tests/unit` (the quick tier) does not start PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.clock import FrozenClock
from bot.store import Store
from tests.unit.world import World, open_world


@pytest_asyncio.fixture
async def world(tmp_path: Path, pg_url: str) -> AsyncIterator[World]:
    async with open_world(tmp_path, pg_url) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """ "" (SQLite in tmp_path) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("pg_url"))


@pytest_asyncio.fixture
async def store(tmp_path: Path, database_url: str) -> AsyncIterator[Store]:
    """An open store on each backend, with a frozen clock."""
    opened = Store(tmp_path / "shop.db", FrozenClock(), url=database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
