"""Configuration: TOML + env overrides, one clear line on any bad value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.log import RedactSecrets
from bot.sharding import Shards

GOOD = """
[discord]
token = "tok-123456789"
[stripe]
secret_key = "sk_test_abc"
webhook_secret = "whsec_abc"
[http]
public_url = "https://shop.example.com/"
"""


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHOPBOT_SECTION__KEY overrides the TOML file; defaults fill the rest."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("SHOPBOT_HTTP__PORT", "9999")
    monkeypatch.setenv("SHOPBOT_DISCORD__COMMAND_GUILD_IDS", "[1, 2]")
    settings = load_settings(path)
    assert settings.http.port == 9999
    assert settings.discord.command_guild_ids == [1, 2]
    assert settings.http.public_url == "https://shop.example.com"
    assert settings.shop.checkout_expiry_minutes == 30


def test_secrets_never_in_repr(tmp_path: Path) -> None:
    """Tokens and keys are SecretStr: not in repr or str of the settings."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    settings = load_settings(path)
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("tok-123456789", "sk_test_abc", "whsec_abc"):
        assert secret not in text


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ("checkout_expiry_minutes = 10\n", "shop.checkout_expiry_minutes"),
        ('default_currency = "dollars"\n', "shop.default_currency"),
        ("bogus = 1\n", "shop.bogus"),
    ],
)
def test_bad_shop_values(tmp_path: Path, patch: str, key: str) -> None:
    """Out-of-range and unknown keys are refused with the key named."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD + "[shop]\n" + patch)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(path)


def test_example_config_is_complete(tmp_path: Path) -> None:
    """config.example.toml documents every key; its placeholders are refused by name."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "config.example.toml").read_text()
    with pytest.raises(ConfigError, match=r"discord\.token: still the example value"):
        load_settings(root / "config.example.toml")
    filled = (
        text.replace("your-bot-token", "tok-1234567")
        .replace("sk_test_...", "sk_test_x")
        .replace("whsec_...", "whsec_x")
    )
    (tmp_path / "config.toml").write_text(filled)
    settings = load_settings(tmp_path / "config.toml")
    for section, model in settings:
        for key in type(model).model_fields:
            alias = type(model).model_fields[key].alias or key
            assert f"\n{alias} =" in text, f"{section}.{alias} missing from config.example.toml"


def test_database_url_selects_postgresql_and_its_password_stays_secret(tmp_path: Path) -> None:
    """database.url (SPEC §2): a postgresql:// URL, a secret like the tokens: not in repr,
    shown as *** in messages, scrubbed from log lines; anything else is one clear line."""
    path = tmp_path / "config.toml"
    url = "postgresql://shop:hunter2-secret@db.internal:5432/shop"
    path.write_text(GOOD + f'[database]\nurl = "{url}"\n')
    settings = load_settings(path)
    assert settings.database.url_value == url
    assert settings.database.where() == "postgresql://shop:***@db.internal:5432/shop"
    assert "hunter2-secret" not in repr(settings) + settings.model_dump_json()
    record = logging.LogRecord("x", logging.INFO, "f", 1, "connecting to %s", (url,), None)
    RedactSecrets(settings.secrets()).filter(record)
    assert "hunter2-secret" not in record.getMessage()
    for bad in ("mysql://x/y", "postgresql://host-without-db", "postgresql://h:99999/db"):
        path.write_text(GOOD + f'[database]\nurl = "{bad}"\n')
        with pytest.raises(ConfigError, match=r"^database\.url: ") as raised:
            load_settings(path)
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ('shard_ids = "0-3"\n', r"discord\.shard_ids: needs discord\.shard_count"),
        ('shard_count = 4\nshard_ids = "2-5"\n', r"discord\.shard_ids: .*'2-5' is outside 0-3"),
        ('shard_count = 4\nshard_ids = "3-1"\n', r"discord\.shard_ids: .*'3-1' runs backwards"),
        ('shard_count = 4\nshard_ids = "a"\n', r"discord\.shard_ids: .*'a' is not a number"),
        ("shard_count = -2\n", r"discord\.shard_count: must be from 1 to 65536"),
        ('shard_count = "many"\n', r"discord\.shard_count: "),
    ],
)
def test_bad_shard_settings_name_the_key(tmp_path: Path, patch: str, message: str) -> None:
    """A shard range that does not fit the shard count, or ids without a count: one line
    naming the key."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("[discord]\n", "[discord]\n" + patch))
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_shard_settings_give_the_process_its_shard_range(tmp_path: Path) -> None:
    """shard_count + shard_ids → Shards; unset (or 0) → one unsharded connection owning
    everything; `--shard-count/--shard-ids` overrides win over the file."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("[discord]\n", '[discord]\nshard_count = 16\nshard_ids = "0-3"\n'))
    discord = load_settings(path).discord
    assert discord.sharded and discord.shards == Shards(16, (0, 1, 2, 3))
    cli = load_settings(path, overrides={"discord": {"shard_count": 4, "shard_ids": "2-3"}})
    assert cli.discord.shards == Shards(4, (2, 3)) and cli.discord.token.get_secret_value()
    path.write_text(GOOD.replace("[discord]\n", "[discord]\nshard_count = 0\n"))
    unsharded = load_settings(path).discord
    assert not unsharded.sharded and unsharded.shards == Shards() and unsharded.shards.everything
