"""The CLI's arguments as operators type them: `--config` before or after the verb."""

from __future__ import annotations

import pytest

from bot.cli import _parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "/etc/shopbot/config.toml", "run"],
        ["run", "--config", "/etc/shopbot/config.toml"],
        ["--config", "other.toml", "run", "--config", "/etc/shopbot/config.toml"],
    ],
)
def test_config_before_or_after_the_verb(argv: list[str]) -> None:
    """The README's `--config PATH` works in either place; after the verb it wins."""
    args = _parser().parse_args(argv)
    assert (args.verb, args.config) == ("run", "/etc/shopbot/config.toml")


def test_no_config_means_the_default_lookup() -> None:
    """Without --config the CLI falls back to $SHOPBOT_CONFIG or ./config.toml (None here)."""
    args = _parser().parse_args(["export", "orders", "--format", "json"])
    assert (args.config, args.what, args.format) == (None, "orders", "json")
