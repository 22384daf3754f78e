"""Shutdown runs every step, whatever the one before it did (bot/app.py `ShopBot.close`),
and secrets never reach the log, not even inside a traceback (bot/log.py)."""

from __future__ import annotations

import io
import logging
import socket
from pathlib import Path

import discord
import pytest
from aiohttp import web

from bot.app import ShopBot
from bot.config import Settings
from bot.log import setup_logging
from tests.harness import free_port

TOKEN = "discord-token-that-must-not-leak"
STRIPE_KEY = "sk_test_key_that_must_not_leak"


def settings(tmp_path: Path) -> Settings:
    return Settings(
        discord={"token": TOKEN},
        stripe={"secret_key": STRIPE_KEY, "webhook_secret": "whsec_unit"},
        http={"public_url": "https://shop.test"},
        database={"path": tmp_path / "shop.db"},
    )


async def test_a_failing_shutdown_step_still_closes_the_web_server_and_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 15: one failing step used to skip closing the web runner and the DB."""
    base = discord.http.Route.BASE
    bot = ShopBot(settings(tmp_path))
    try:
        await bot.store.open()
        runner = web.AppRunner(web.Application())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        bot._web_runner = runner

        async def broken_http_close() -> None:
            raise OSError("connection reset while closing")

        monkeypatch.setattr(bot.http, "close", broken_http_close)  # Discord's close fails
        await bot.close()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
        with pytest.raises(RuntimeError, match="not open"):
            _ = bot.store.db.conn
    finally:
        discord.http.Route.BASE = base


def test_secrets_in_a_traceback_are_scrubbed() -> None:
    """Issue 9 item 15: redaction covered the message but not the exception's text."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", False, [TOKEN, STRIPE_KEY])
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        try:
            raise ValueError(f"https://api.stripe.com/v1/x?key={STRIPE_KEY} token={TOKEN}")
        except ValueError:
            logging.getLogger("bot.test").exception("request failed")
        setup_logging("INFO", True, [TOKEN, STRIPE_KEY])
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        try:
            raise ValueError(f"bad key {STRIPE_KEY}")
        except ValueError:
            logging.getLogger("bot.test").exception("as json")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    text = stream.getvalue()
    assert "request failed" in text and "ValueError" in text and "as json" in text
    assert TOKEN not in text and STRIPE_KEY not in text
    assert text.count("***") >= 3
