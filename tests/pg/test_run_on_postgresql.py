"""The real `shopbot run` on PostgreSQL (`database.url`): a purchase against the fakes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import shopbot_command
from tests.shop import BUYER, Shop, open_shop, text_of
from tests.unit.world import pg_rows


@pytest_asyncio.fixture
async def pg_shop(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe, pg_url: str
) -> AsyncIterator[Shop]:
    env = {"SHOPBOT_DATABASE__URL": pg_url}
    async with open_shop(tmp_path, fake_discord, fake_stripe, env=env) as running:
        yield running


async def test_shopbot_run_on_postgresql_completes_a_purchase(pg_shop: Shop, pg_url: str) -> None:
    """/shop product add → /buy → Stripe → webhook → role → /purchases with every row in
    PostgreSQL (no SQLite file is created), and `shopbot backup` says to use pg_dump."""
    shop = pg_shop
    await shop.add_product("VIP", "4.99")
    session_id = await shop.buy(BUYER, "VIP")
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(BUYER), "role granted")
    await shop.wait(lambda: shop.dms_to(BUYER), "receipt DM")
    reply = await shop.command(BUYER, "purchases")
    assert "**VIP** — delivered · yours for good" in text_of(reply)
    assert pg_rows(pg_url, "SELECT status, buyer_id FROM orders") == [("paid", BUYER)]
    assert pg_rows(pg_url, "SELECT kind, status FROM delivery_jobs WHERE kind='grant_role'") == [
        ("grant_role", "completed")
    ]
    assert not shop.bot.db_path.exists()
    env = {"SHOPBOT_DATABASE__URL": pg_url}
    backup = subprocess.run(
        [*shopbot_command(), "--config", str(shop.bot.config_path), "backup", "x.dump"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert backup.returncode == 2
    assert "use pg_dump" in backup.stderr
    assert "postgres@127.0.0.1" in backup.stderr


def test_migrate_on_postgresql_reports_the_schema_version(tmp_path: Path, pg_url: str) -> None:
    """`shopbot migrate` with database.url: PostgreSQL's migrations, the version from
    schema_version; an unreachable server is one line naming it, without the password."""
    from bot.store.db import _migrations

    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{pg_url}"\n')
    migrate = subprocess.run(
        [*shopbot_command(), "--config", str(config), "migrate"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    steps = _migrations("bot.store.migrations_pg")
    latest = steps[-1][0]
    assert migrate.stdout == f"database {pg_url} is at schema version {latest}\n"
    assert pg_rows(pg_url, "SELECT COUNT(*) FROM schema_version") == [(len(steps),)]
    config.write_text('[database]\nurl = "postgresql://shop:s3cret-pw@127.0.0.1:1/shop"\n')
    refused = subprocess.run(
        [*shopbot_command(), "--config", str(config), "migrate"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(
        "shopbot: migrate: cannot reach database postgresql://shop:***@127.0.0.1:1/shop"
    )
    assert "s3cret-pw" not in refused.stderr + refused.stdout
