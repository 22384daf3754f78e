"""The CLI verbs against the local fakes: check, migrate, and a clean SIGTERM stop."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, shopbot_command
from tests.shop import Shop


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `shopbot` off the event loop (the fakes live on this loop)."""
    return await asyncio.to_thread(
        subprocess.run, [*shopbot_command(), *args], capture_output=True, text=True, timeout=60
    )


async def test_check_reaches_discord_and_stripe(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """`shopbot check` validates the config and reaches both APIs with it."""
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [])
    result = await run_cli("--config", str(bot.config_path), "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "discord: ok" in result.stdout
    assert "stripe: ok" in result.stdout


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
    assert bot.scalar("PRAGMA user_version") >= 1


async def test_sigterm_stops_cleanly(shop: Shop) -> None:
    """SIGTERM closes the bot with exit code 0 and no traceback."""
    assert await shop.bot.stop() == 0
    log = shop.bot.log_text()
    assert "stopped" in log and "Traceback" not in log
