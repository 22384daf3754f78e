"""The CLI's arguments as operators type them: `--config` before or after the verb."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import _parser, _run_overrides, main


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


def test_run_takes_shard_flags_that_override_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --shard-count 4 --shard-ids 0-1` become discord.shard_count / shard_ids over the
    file's values; a bad combination stops with one line naming the key, before anything
    starts; a shard count that is not a number is refused by the parser."""
    args = _parser().parse_args(["run", "--shard-count", "4", "--shard-ids", "0-1"])
    assert _run_overrides(args) == {"discord": {"shard_count": 4, "shard_ids": "0-1"}}
    assert _run_overrides(_parser().parse_args(["run"])) == {}
    config = tmp_path / "config.toml"
    config.write_text(
        '[discord]\ntoken = "tok-1"\nshard_count = 8\n[stripe]\nsecret_key = "sk_test_x"\n'
        'webhook_secret = "whsec_x"\n[http]\npublic_url = "https://shop.example.com"\n'
    )
    assert main(["--config", str(config), "run", "--shard-ids", "4-9"]) == 2
    assert capsys.readouterr().err == (
        "shopbot: config error: discord.shard_ids: shard id range '4-9' is outside 0-7 "
        "(shard_count is 8)\n"
    )
    assert main(["--config", str(config), "run", "--shard-count", "2", "--shard-ids", "4"]) == 2
    assert "'4' is outside 0-1 (shard_count is 2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--shard-count", "four"])
    assert "invalid int value: 'four'" in capsys.readouterr().err
