"""The rules behind `shopbot check` and the database-only settings, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import discord
import pytest

from bot.config import LocalSettings, WebhookSetupSettings, load_settings
from bot.errors import ConfigError
from bot.models import Action
from bot.preflight import needed_permissions
from bot.stripe_setup import key_mode, missing_events
from tests.unit.test_config import GOOD


def action(type: str, channel_id: int | None = None) -> Action:
    return Action(1, 1, type, "on_purchase", 5, channel_id, None, "", False, datetime.now(UTC))


@pytest.mark.parametrize(
    ("actions", "flags"),
    [
        ([], {"manage_roles": True}),
        ([action("grant_role")], {"manage_roles": True}),
        ([action("send_message")], {}),
        ([action("deliver_license")], {}),
        ([action("send_message", channel_id=7)], {"send_messages": True}),
        ([action("create_invite", channel_id=7)], {"create_instant_invite": True}),
        ([action("kick"), action("ban")], {"kick_members": True, "ban_members": True}),
    ],
)
def test_invite_permissions_are_exactly_what_the_actions_need(
    actions: list[Action], flags: dict[str, bool]
) -> None:
    """A DM needs no permission; a channel message Send Messages; no actions yet: Manage
    Roles, what a role shop needs."""
    assert needed_permissions(actions) == discord.Permissions(**flags).value


def test_an_endpoint_for_every_event_misses_none() -> None:
    """`*` receives every event; otherwise the missing ones are named, sorted."""
    needed = ["invoice.paid", "charge.refunded", "checkout.session.completed"]
    assert missing_events(["*"], needed) == []
    assert missing_events(["invoice.paid"], needed) == [
        "charge.refunded",
        "checkout.session.completed",
    ]


def test_key_mode_comes_from_the_key_prefix() -> None:
    assert key_mode("sk_live_abc") == key_mode("rk_live_abc") == "live"
    assert key_mode("sk_test_abc") == key_mode("rk_test_abc") == "test"


def test_database_only_settings_still_check_the_database_section(tmp_path: Path) -> None:
    """LocalSettings reads [database] alone, ignores unfinished Discord/Stripe keys, and
    still refuses a misspelt section or key."""
    path = tmp_path / "config.toml"
    path.write_text('[discord]\ntoken = "your-bot-token"\n[database]\npath = "x.db"\n')
    assert load_settings(path, LocalSettings).database.path == Path("x.db")
    path.write_text('[databse]\npath = "x.db"\n')
    with pytest.raises(ConfigError, match="databse is not a known setting"):
        load_settings(path, LocalSettings)
    path.write_text('[database]\npth = "x.db"\n')
    with pytest.raises(ConfigError, match=r"database\.pth is not a known setting"):
        load_settings(path, LocalSettings)


def test_setup_webhook_settings_need_no_signing_secret_yet(tmp_path: Path) -> None:
    """`stripe setup-webhook` is how an operator gets the secret: it may be absent or the
    example; the full Settings refuse both and say which verb prints one."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace('webhook_secret = "whsec_abc"\n', ""))
    assert load_settings(path, WebhookSetupSettings).stripe.secret_key.get_secret_value()
    with pytest.raises(ConfigError, match="setup-webhook"):
        load_settings(path)
    path.write_text(GOOD.replace("whsec_abc", "whsec_..."))
    load_settings(path, WebhookSetupSettings)
    with pytest.raises(ConfigError, match="setup-webhook"):
        load_settings(path)
