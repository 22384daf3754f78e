"""Configuration errors as an operator sees them: `shopbot` exits with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.test_config import GOOD


def shopbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess:
    clean_env = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=cwd,
        timeout=60,
    )


def test_run_without_token_names_the_key(tmp_path: Path) -> None:
    """`shopbot run` with no config exits non-zero with one line naming discord.token."""
    result = shopbot("run", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "discord.token" in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_value_names_the_key(tmp_path: Path) -> None:
    """A bad value exits non-zero naming the key, without a traceback."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("sk_test_abc", "pk_test_abc"))
    result = shopbot("--config", str(path), "check", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "stripe.secret_key" in result.stderr
