"""The operator's setup path against the fakes: `shopbot check`, `shopbot stripe setup-webhook`,
and the database-only verbs that need no Discord or Stripe keys."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest_asyncio

from bot.clock import SystemClock
from bot.store import Store
from tests.e2e.test_cli import run_cli
from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import BotProcess, free_port
from tests.unit.test_dispatch import SPEC_EVENTS

PUBLIC_URL = "https://shop.shopbot-test.dev"
WEBHOOK_URL = f"{PUBLIC_URL}/webhooks/stripe"


@dataclass
class Setup:
    """A server with two product roles below the bot's, a catalog, and a config for it."""

    discord: FakeDiscord
    stripe: FakeStripe
    bot: BotProcess
    guild_id: int
    vip_role: int
    gold_role: int

    def edit_config(self, old: str, new: str) -> None:
        text = self.bot.config_path.read_text()
        assert old in text, old
        self.bot.config_path.write_text(text.replace(old, new))

    def add_endpoint(self, events: list[str]) -> str:
        """An endpoint made in the Dashboard (through the fake's own API handler)."""
        params = {"url": WEBHOOK_URL, "enabled_events": events}
        return self.stripe.create_webhook_endpoint(params)["id"]

    async def check(self) -> tuple[int, list[str], str]:
        """Run `shopbot check`; return (exit code, stdout lines, stderr)."""
        result = await run_cli("--config", str(self.bot.config_path), "check")
        return result.returncode, result.stdout.splitlines(), result.stderr


async def seed_catalog(db_path: Path, guild_id: int, vip: int, gold: int, channel: int) -> None:
    """Products as /shop product add and /shop action add would store them."""
    store = Store(db_path, SystemClock())
    await store.open()
    try:
        async with store.transaction() as tx:
            common = {"guild_id": guild_id, "description": "", "currency": "usd"}
            vip_product = await tx.products.add(
                name="VIP", price_amount=499, kind="one_time", **common
            )
            gold_product = await tx.products.add(
                name="Gold", price_amount=999, kind="subscription", interval="month", **common
            )
            for product, role in ((vip_product, vip), (gold_product, gold)):
                await tx.products.add_action(
                    product.id, type="grant_role", stage="on_purchase", role_id=role
                )
            await tx.products.add_action(
                vip_product.id,
                type="send_message",
                stage="on_purchase",
                channel_id=channel,
                message="{user} joined VIP",
            )
            await tx.products.add_action(
                vip_product.id, type="send_message", stage="on_refund", message="refunded (a DM)"
            )
            await tx.products.add_action(
                vip_product.id, type="create_invite", stage="on_purchase", channel_id=channel
            )
            await tx.products.add_action(gold_product.id, type="kick", stage="on_chargeback")
    finally:
        await store.close()


@pytest_asyncio.fixture
async def setup(tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe) -> Setup:
    guild = fake_discord.add_guild(name="Shop", owner_id=1001)
    vip = fake_discord.add_role(guild.id, "VIP", position=2)
    gold = fake_discord.add_role(guild.id, "Gold", position=3)
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [guild.id])
    ready = Setup(fake_discord, fake_stripe, bot, guild.id, vip.id, gold.id)
    ready.edit_config(f'public_url = "{bot.url}"', f'public_url = "{PUBLIC_URL}"')
    await seed_catalog(bot.db_path, guild.id, vip.id, gold.id, guild.default_channel.id)
    fake_stripe.add_portal_configuration()
    return ready


def failed(lines: list[str]) -> list[str]:
    return [line for line in lines if "FAILED" in line]


async def test_check_passes_a_clean_setup_and_prints_the_exact_invite_url(setup: Setup) -> None:
    """Everything in order: exit 0, no FAILED line, and the invite URL asks for exactly the
    permissions the actions need (roles, channel message, invite, kick; no ban: none bans;
    a DM needs nothing). An endpoint subscribed to `*` receives every event."""
    setup.add_endpoint(["*"])
    code, lines, stderr = await setup.check()
    assert code == 0, "\n".join(lines) + stderr
    assert failed(lines) == []
    needed = discord.Permissions(
        manage_roles=True, send_messages=True, create_instant_invite=True, kick_members=True
    ).value
    invite = (
        f"https://discord.com/oauth2/authorize?client_id={setup.discord.application_id}"
        f"&scope=bot%20applications.commands&permissions={needed}"
    )
    assert f"discord: invite URL {invite}" in lines
    text = "\n".join(lines)
    assert "Server Members intent is enabled" in text
    assert "Shop: the bot's role Bot is above every product role (Gold, VIP)" in text
    assert f"stripe: ok, test mode, account {setup.stripe.account['id']}" in lines
    assert "customer portal configured" in text
    assert text.endswith("check: all good; start the bot with `shopbot run`")
    assert "Request to Stripe api" not in stderr + text  # the SDK's INFO lines stay out


async def test_check_names_the_missing_webhook_events_and_setup_webhook_adds_them(
    setup: Setup,
) -> None:
    """An endpoint without one needed event: one FAILED line naming it, exit non-zero;
    `setup-webhook` then updates that endpoint (no second one) and `check` passes."""
    endpoint = setup.add_endpoint(sorted(SPEC_EVENTS - {"charge.dispute.created"}))
    code, lines, _ = await setup.check()
    assert code != 0
    assert len(failed(lines)) == 1, lines
    assert endpoint in failed(lines)[0] and "charge.dispute.created" in failed(lines)[0]
    result = await run_cli("stripe", "setup-webhook", "--config", str(setup.bot.config_path))
    assert result.returncode == 0, result.stderr
    assert f"updated webhook endpoint {endpoint}" in result.stdout
    assert "signing secret is unchanged" in result.stdout
    assert list(setup.stripe.webhook_endpoints) == [endpoint]
    assert sorted(setup.stripe.webhook_endpoints[endpoint]["enabled_events"]) == sorted(SPEC_EVENTS)
    code, lines, _ = await setup.check()
    assert code == 0, lines


async def test_check_reports_a_rejected_stripe_key_as_one_line(setup: Setup) -> None:
    """Stripe answers 401: one FAILED line naming stripe.secret_key, exit non-zero."""
    setup.add_endpoint(["*"])
    setup.edit_config(setup.stripe.secret_key, "sk_test_wrong")
    code, lines, _ = await setup.check()
    assert code != 0
    assert len(failed(lines)) == 1, lines
    assert "stripe.secret_key" in failed(lines)[0] and "401" in failed(lines)[0]


async def test_check_reports_unreachable_stripe_as_a_network_failure(setup: Setup) -> None:
    """Nothing listens at stripe.api_base: "cannot reach", not a bad key; exit non-zero."""
    setup.edit_config(setup.stripe.api_base, f"http://127.0.0.1:{free_port()}")
    code, lines, _ = await setup.check()
    assert code != 0
    assert len(failed(lines)) == 1, lines
    assert "cannot reach Stripe" in failed(lines)[0]
    assert "secret_key" not in failed(lines)[0]


async def test_check_refuses_the_example_public_url(setup: Setup) -> None:
    """http.public_url left at the example: one FAILED line saying so, exit non-zero."""
    setup.add_endpoint(["*"])
    setup.edit_config(PUBLIC_URL, "https://shop.example.com")
    code, lines, _ = await setup.check()
    assert code != 0
    assert failed(lines) == [
        "http: FAILED, http.public_url is still the example https://shop.example.com; set "
        "the public https URL this server is reached at"
    ]


async def test_check_reports_a_product_role_above_the_bot_and_the_members_intent(
    setup: Setup,
) -> None:
    """A product role moved above the bot's role and the intent switched off: one FAILED
    line for each, naming the role and the portal switch."""
    setup.add_endpoint(["*"])
    setup.discord.update_role(setup.guild_id, setup.gold_role, position=20, dispatch=False)
    setup.discord.members_intent_enabled = False
    code, lines, _ = await setup.check()
    assert code != 0
    problems = failed(lines)
    assert len(problems) == 2, lines
    assert any("Server Members Intent" in line for line in problems)
    assert any("role Gold is not below the bot's highest role Bot" in line for line in problems)


async def test_setup_webhook_twice_creates_one_endpoint_and_check_then_passes(
    setup: Setup,
) -> None:
    """With no signing secret configured yet, `stripe setup-webhook` creates the endpoint
    with exactly the needed events and prints its secret; run again it creates nothing.
    With that secret in the config, `check` passes the webhook line."""
    config = setup.bot.config_path
    text = config.read_text()
    secret_line = next(line for line in text.splitlines() if line.startswith("webhook_secret"))
    config.write_text(text.replace(secret_line + "\n", ""))
    first = await run_cli("--config", str(config), "stripe", "setup-webhook")
    assert first.returncode == 0, first.stderr
    assert len(setup.stripe.webhook_endpoints) == 1
    ((endpoint_id, endpoint),) = setup.stripe.webhook_endpoints.items()
    assert endpoint["url"] == WEBHOOK_URL
    assert sorted(endpoint["enabled_events"]) == sorted(SPEC_EVENTS)
    secret = setup.stripe.webhook_secrets[endpoint_id]
    assert f"signing secret: {secret}" in first.stdout
    assert (
        "stripe.webhook_secret" in first.stdout and "SHOPBOT_STRIPE__WEBHOOK_SECRET" in first.stdout
    )
    second = await run_cli("stripe", "setup-webhook", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout and "whsec_" not in second.stdout
    assert len(setup.stripe.webhook_endpoints) == 1
    assert len(setup.stripe.requests_to("/v1/webhook_endpoints", "POST")) == 1
    config.write_text(
        config.read_text().replace("[stripe]\n", f'[stripe]\nwebhook_secret = "{secret}"\n')
    )
    code, lines, _ = await setup.check()
    assert code == 0, lines
    assert any(
        line.startswith(f"stripe: ok, webhook endpoint {endpoint_id} for {WEBHOOK_URL}")
        for line in lines
    )


async def test_setup_webhook_refuses_the_example_public_url(setup: Setup) -> None:
    """No endpoint is made for https://shop.example.com: one line, exit non-zero."""
    setup.edit_config(PUBLIC_URL, "https://shop.example.com")
    result = await run_cli("--config", str(setup.bot.config_path), "stripe", "setup-webhook")
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.startswith("shopbot:")] == [
        "shopbot: http.public_url is still the example https://shop.example.com; set the "
        "public https URL this server is reached at"
    ]
    assert setup.stripe.webhook_endpoints == {}


async def test_database_verbs_work_with_only_a_database_path(tmp_path: Path) -> None:
    """migrate, export and backup need no Discord or Stripe keys; check still demands them."""
    db = tmp_path / "data" / "shop.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db}"\n')
    migrated = await run_cli("migrate", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    exported = await run_cli("export", "orders", "--config", str(config))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("id,guild_id,buyer_id")
    target = tmp_path / "backup.db"
    backed_up = await run_cli("--config", str(config), "backup", str(target))
    assert backed_up.returncode == 0, backed_up.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (0,)
    check = await run_cli("--config", str(config), "check")
    assert check.returncode != 0
    assert re.fullmatch(r"shopbot: config error: discord\.token is required .*\n", check.stderr)
