"""SQLite serves one process: a second `shopbot run` on the same file is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness import BotProcess, shopbot_command, wait_until
from tests.shop import Shop


async def test_second_run_on_one_sqlite_file_is_refused(shop: Shop, tmp_path: Path) -> None:
    """Two processes on one SQLite file would fight over its write lock and run every job
    twice: the second exits with one line naming the file and the way out (PostgreSQL);
    the first keeps serving, and db-only verbs still work beside it."""
    (tmp_path / "second").mkdir()
    second = BotProcess(tmp_path / "second", shop.discord, shop.stripe, [shop.guild_id])
    second.config_path.write_text(
        second.config_path.read_text().replace(str(second.db_path), str(shop.bot.db_path))
    )
    await second.start(wait=False)
    assert second.proc is not None
    await wait_until(lambda: second.proc.poll() is not None, 20, "the second run to exit")
    assert second.proc.returncode == 2
    lines = [line for line in second.log_text().splitlines() if line.startswith("shopbot:")]
    assert lines == [
        f"shopbot: database {shop.bot.db_path} is in use by another shopbot run "
        f"(pid {shop.bot.proc.pid}); SQLite serves one process: stop that one, or set "  # type: ignore[union-attr]
        "database.url to a PostgreSQL database to run several"
    ]
    await shop.bot.wait_healthy(5)
    export = subprocess.run(
        [*shopbot_command(), "--config", str(shop.bot.config_path), "export", "orders"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert export.stdout.startswith("id,guild_id,")
