"""`shopbot webhook create|list|delete|deliveries`: database-only verbs, no tokens needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_webhook_cli_create_list_delete_without_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config with only [database] runs every webhook verb; bad input is one clear line
    and a non-zero exit, with nothing written."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "shop.db"}"\n')
    run = ["--config", str(config), "webhook"]
    assert main([*run, "create", "--url", "https://x.test/h", "--events", "order.paid,x"]) == 2
    assert "unknown event x" in capsys.readouterr().err
    assert main([*run, "create", "--url", "ftp://x", "--events", "order.paid"]) == 2
    assert "http:// or https://" in capsys.readouterr().err
    assert main([*run, "list"]) == 0
    assert "no webhook endpoints" in capsys.readouterr().out
    assert main([*run, "create", "--url", "https://x.test/h", "--events", "order.paid"]) == 0
    out = capsys.readouterr().out
    assert "endpoint 1: https://x.test/h (order.paid)" in out and "whsec_" in out
    assert main([*run, "list"]) == 0
    listed = capsys.readouterr().out
    assert "https://x.test/h\torder.paid\tenabled" in listed and "whsec_" not in listed
    assert main([*run, "deliveries", "1"]) == 0
    assert "no deliveries yet" in capsys.readouterr().out
    assert main([*run, "delete", "1"]) == 0
    assert main([*run, "delete", "1"]) == 2
    assert "no webhook endpoint 1" in capsys.readouterr().err
    assert main([*run, "deliveries", "1"]) == 2
