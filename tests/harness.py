"""Runs the real `shopbot run` process against the local fakes and drives it like a user."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

WEBHOOK_SECRET = "whsec_test_shopbot_fake_secret"
MANAGE_GUILD = 1 << 5
SECRETS_TO_HIDE: set[str] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shopbot_command() -> list[str]:
    """The installed console script (what operators run); `python -m bot` if absent."""
    script = Path(sys.executable).with_name("shopbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll a condition (cheap, local) until it holds; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


class BotProcess:
    """One `shopbot run` subprocess with its own temp config, database and log file."""

    def __init__(
        self,
        workdir: Path,
        discord: Any,
        stripe: Any,
        guild_ids: list[int],
        extra: str = "",
        env: dict[str, str] | None = None,
        run_args: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.discord = discord
        self.stripe = stripe
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = workdir / "shop.db"
        self.log_path = workdir / "shopbot.log"
        self.config_path = workdir / "config.toml"
        self.env = env or {}
        self.run_args = run_args or []  # after `run`, e.g. ["--shard-count", "4"]
        self.proc: subprocess.Popen[bytes] | None = None
        SECRETS_TO_HIDE.update({discord.token, stripe.secret_key, WEBHOOK_SECRET})
        self.config_path.write_text(
            f"""
[discord]
token = "{discord.token}"
api_base = "{discord.api_base}"
gateway_url = "{discord.gateway_url}"
command_guild_ids = {guild_ids}
[stripe]
secret_key = "{stripe.secret_key}"
webhook_secret = "{WEBHOOK_SECRET}"
api_base = "{stripe.api_base}"
[http]
host = "127.0.0.1"
port = {self.port}
public_url = "{self.url}"
[database]
path = "{self.db_path}"
[log]
level = "DEBUG"
{extra}
"""
        )

    async def start(self, *, wait: bool = True) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.pop("SHOPBOT_CONFIG", None)
        self.proc = subprocess.Popen(
            [*shopbot_command(), "--config", str(self.config_path), "run", *self.run_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        log.close()
        if wait:
            await self.wait_healthy()

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until /healthz says the process, database and gateway are all up."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"shopbot exited early:\n{self.log_text()[-3000:]}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"shopbot not healthy:\n{self.log_text()[-3000:]}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (crash simulation)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read the bot's database (WAL allows it while the bot runs)."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None
