"""The CLI verbs against the local fakes: check, migrate, and a clean SIGTERM stop (the setup
path, `check` in full and `stripe setup-webhook`, is in test_setup.py)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, shopbot_command
from tests.shop import Shop

MIGRATIONS = Path(__file__).resolve().parents[2] / "bot/store/migrations"
# The newest numbered migration file: `migrate` must reach exactly this version.
LATEST_SCHEMA = max(int(path.name[:4]) for path in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `shopbot` off the event loop (the fakes live on this loop)."""
    return await asyncio.to_thread(
        subprocess.run, [*shopbot_command(), *args], capture_output=True, text=True, timeout=60
    )


async def test_check_reports_a_bad_stripe_key(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """A key Stripe rejects makes `check` fail and say which setting to fix."""
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [])
    text = bot.config_path.read_text().replace(fake_stripe.secret_key, "sk_test_wrong")
    bot.config_path.write_text(text)
    result = await run_cli("--config", str(bot.config_path), "check")
    assert result.returncode == 1
    assert "stripe: FAILED" in result.stdout and "stripe.secret_key" in result.stdout


async def test_migrate_creates_the_schema(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """`shopbot migrate` creates the database at the newest schema version."""
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [])
    result = await run_cli("--config", str(bot.config_path), "migrate")
    assert result.returncode == 0, result.stderr
    assert "schema version" in result.stdout
    assert bot.scalar("PRAGMA user_version") == LATEST_SCHEMA


async def test_sigterm_stops_cleanly(shop: Shop) -> None:
    """SIGTERM closes the bot with exit code 0 and no traceback."""
    assert await shop.bot.stop() == 0
    log = shop.bot.log_text()
    assert "stopped" in log and "Traceback" not in log


async def test_events_replay_recovers_a_missed_webhook(shop: Shop) -> None:
    """A payment whose webhook never arrived is fetched by `events replay`, once, even twice."""
    from tests.shop import BUYER

    await shop.add_product()
    session_id = await shop.buy()
    shop.stripe.complete_checkout(session_id)  # Stripe has the event; we never got it
    await shop.bot.stop()
    config = str(shop.bot.config_path)
    for _ in range(2):
        result = await run_cli("--config", config, "events", "replay", "--since", "2020-01-01")
        assert result.returncode == 0, result.stderr
        assert "fetched" in result.stdout
    assert shop.bot.scalar("SELECT status FROM orders") == "paid"
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1
    await shop.bot.start()
    await shop.wait(lambda: shop.has_role(BUYER), "role after replay")
    bad = await run_cli("--config", config, "events", "replay", "--since", "yesterday")
    assert bad.returncode != 0 and "--since" in bad.stderr


async def test_events_retry_reruns_failed_ones(shop: Shop) -> None:
    """Issue 9 item 2: an event left `failed` (by a bug since fixed) is applied by
    `shopbot events retry`, once; `events replay` without --since says what it needs."""
    import json as jsonlib
    import sqlite3

    await shop.add_product()
    event = shop.stripe.complete_checkout(await shop.buy())
    await shop.bot.stop()
    with sqlite3.connect(shop.bot.db_path) as conn:
        conn.execute(
            "INSERT INTO webhook_events (id, type, created, payload, status, attempts,"
            " last_error, received_at) VALUES (?, ?, ?, ?, 'failed', 12, 'RuntimeError: bug',"
            " '2026-01-01T00:00:00.000000Z')",
            (event["id"], event["type"], event["created"], jsonlib.dumps(event)),
        )
    config = str(shop.bot.config_path)
    result = await run_cli("events", "retry", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 failed events retried: 1 processed"
    assert shop.bot.scalar("SELECT status FROM orders") == "paid"
    again = await run_cli("events", "retry", "--config", config)
    assert again.stdout.strip() == "0 failed events retried: none"
    assert shop.bot.scalar("SELECT COUNT(*) FROM entitlements") == 1
    bad = await run_cli("events", "replay", "--config", config)
    assert bad.returncode != 0 and "needs --since" in bad.stderr


async def test_backup_and_export(shop: Shop, tmp_path: Path) -> None:
    """`backup` copies the live database; `export orders` writes CSV and JSON."""
    import json as jsonlib
    import sqlite3

    await shop.add_product()
    await shop.pay(await shop.buy())
    await shop.wait(lambda: shop.bot.scalar("SELECT status FROM orders") == "paid", "paid")
    config = str(shop.bot.config_path)
    target = tmp_path / "copy" / "backup.db"
    result = await run_cli("--config", config, "backup", str(target))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT status FROM orders").fetchone() == ("paid",)
    again = await run_cli("--config", config, "backup", str(target))
    assert again.returncode != 0 and "already exists" in again.stderr
    csv_out = await run_cli("--config", config, "export", "orders", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("id,guild_id,buyer_id")
    assert ",VIP,499,usd,paid," in csv_out.stdout
    json_out = await run_cli("--config", config, "export", "orders", "--format", "json")
    assert jsonlib.loads(json_out.stdout)[0]["status"] == "paid"
