"""A running shop for end-to-end tests: guild, members, roles, the bot process, and verbs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.stripe import FakeStripe, WebhookSender
from tests.harness import MANAGE_GUILD, SECRETS_TO_HIDE, WEBHOOK_SECRET, BotProcess, wait_until

ADMIN, BUYER, FRIEND, STRANGER = 1001, 2002, 3003, 4004


@dataclass
class Shop:
    discord: FakeDiscord
    stripe: FakeStripe
    bot: BotProcess
    sender: WebhookSender
    guild_id: int
    vip_role: int
    high_role: int

    async def admin(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        user: int = ADMIN,
        permissions: int = MANAGE_GUILD,
    ) -> dict[str, Any]:
        """Run an admin command; return the (ephemeral) reply message."""
        inter = await self.discord.invoke_command(
            self.guild_id, user, command, options or {}, permissions=str(permissions)
        )
        message = await inter.wait_message()
        assert inter.is_ephemeral(), f"/{command} replied publicly"
        return message

    async def command(
        self, user: int, command: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        inter = await self.discord.invoke_command(
            self.guild_id, user, command, options or {}, permissions="0"
        )
        message = await inter.wait_message()
        assert inter.is_ephemeral(), f"/{command} replied publicly"
        return message

    async def add_product(self, name: str = "VIP", price: str = "4.99", **options: Any) -> None:
        options.setdefault("role", self.vip_role)
        options = {key: value for key, value in options.items() if value is not None}
        reply = await self.admin("shop product add", {"name": name, "price": price, **options})
        assert "Added" in text_of(reply), text_of(reply)

    async def buy(self, user: int = BUYER, product: str = "VIP", **options: Any) -> str:
        """/buy; return the Stripe Checkout Session id behind the link button."""
        message = await self.command(user, "buy", {"product": product, **options})
        url = checkout_url(message)
        assert url, f"no checkout link in {message}"
        session_id = url.rstrip("/").split("/")[-1]
        assert session_id in self.stripe.sessions
        return session_id

    async def pay(self, session_id: str, **kwargs: Any) -> dict[str, Any]:
        """Stripe completes the checkout and delivers the signed event; return the event."""
        event = self.stripe.complete_checkout(session_id, **kwargs)
        status, body = await self.sender.send(event)
        assert status == 200, body
        return event

    async def pay_while_away(self, user: int) -> None:
        """The member opens a checkout, leaves the server, then pays: the grant waits."""
        self.discord.add_member(self.guild_id, user, dispatch=False)
        session_id = await self.buy(user)
        self.discord.remove_member(self.guild_id, user, dispatch=True)
        await self.pay(session_id)
        await self.wait(
            lambda: (
                self.bot.scalar(
                    "SELECT waiting_for_member FROM delivery_jobs WHERE kind='grant_role'"
                )
                == 1
            ),
            "grant waiting for the member",
        )

    @property
    def channel_id(self) -> int:
        """The guild's default text channel (where panels are posted)."""
        return self.discord.guild(self.guild_id).default_channel.id

    async def post_panel(self, **options: Any) -> dict[str, Any]:
        """/shop panel post in the default channel; return the panel message as Discord has it."""
        before = set(self.discord.messages)
        reply = await self.admin("shop panel post", {"channel": self.channel_id, **options})
        assert "Posted a panel" in text_of(reply), text_of(reply)
        posted = [
            m
            for mid, m in self.discord.messages.items()
            if mid not in before and buy_buttons(m) and m["channel_id"] == str(self.channel_id)
        ]
        assert len(posted) == 1, posted
        return posted[0]

    def message(self, message_id: int | str) -> dict[str, Any] | None:
        """A message as it is now (None once deleted)."""
        return self.discord.messages.get(int(message_id))

    async def press(
        self, custom_id: str, user: int = BUYER, message_id: int | str | None = None
    ) -> FakeInteraction:
        """A member presses a button of a message the bot posted (type 3 interaction)."""
        return await self.discord.click_component(
            self.guild_id,
            user,
            custom_id,
            message_id=int(message_id) if message_id is not None else None,
            permissions="0",
        )

    async def press_buy(
        self, product_id: int, user: int = BUYER, message_id: int | str | None = None
    ) -> dict[str, Any]:
        """Press a panel's Buy button; return the (ephemeral) answer once it carries text."""
        inter = await self.press(f"shop:buy:{product_id}", user, message_id)
        message = await inter.wait_message(predicate=lambda m: bool(text_of(m).strip()))
        assert inter.is_ephemeral(), f"the Buy button answered publicly: {message}"
        return message

    def product_id(self, name: str) -> int:
        return int(self.bot.scalar("SELECT id FROM products WHERE name=?", (name,)))

    def has_role(self, user: int, role: int | None = None) -> bool:
        return self.discord.has_role(self.guild_id, user, role or self.vip_role)

    def role_adds(self, user: int = BUYER) -> list[Any]:
        """Successful role PUTs for this user."""
        return [
            op for op in self.discord.role_ops if op[0] == "add" and op[2] == user and op[-1] == 204
        ]

    def dms_to(self, user: int) -> list[Any]:
        return [dm for dm in self.discord.dms if dm[0] == user]

    async def wait(self, predicate: Any, what: str, timeout: float = 15.0) -> Any:
        return await wait_until(predicate, timeout, what)


def text_of(message: dict[str, Any]) -> str:
    """Content plus embed titles, descriptions and fields, for assertions."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields") or []]
    return "\n".join(parts)


def buy_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The shop panel Buy buttons of a message, in order."""
    return [
        item
        for row in message.get("components") or []
        for item in row.get("components") or []
        if str(item.get("custom_id", "")).startswith("shop:buy:")
    ]


def checkout_url(message: dict[str, Any]) -> str | None:
    for row in message.get("components") or []:
        for item in row.get("components") or []:
            if item.get("url", "").startswith("https://checkout.stripe.com/"):
                return item["url"]
    return None


@asynccontextmanager
async def open_shop(
    workdir: Path,
    discord: FakeDiscord,
    stripe: FakeStripe,
    extra_config: str = "",
    env: dict[str, str] | None = None,
) -> AsyncIterator[Shop]:
    guild = discord.add_guild(name="Shop", owner_id=ADMIN)
    vip = discord.add_role(guild.id, "VIP", position=2)
    high = discord.add_role(guild.id, "Mods", position=50)
    for user in (ADMIN, BUYER, FRIEND):
        discord.add_member(guild.id, user, dispatch=False)
    bot = BotProcess(workdir, discord, stripe, [guild.id], extra=extra_config, env=env)
    sender = WebhookSender(f"{bot.url}/webhooks/stripe", WEBHOOK_SECRET)
    try:
        await bot.start()
        await discord.wait_for(
            lambda: guild.id in discord.synced_commands or str(guild.id) in discord.synced_commands,
            timeout=10,
            what="commands synced",
        )
        yield Shop(discord, stripe, bot, sender, guild.id, vip.id, high.id)
    finally:
        await bot.stop()
        await sender.close()
        log = bot.log_text()
        leaked = [s for s in SECRETS_TO_HIDE if s in log]
        assert not leaked, "a secret appeared in the bot's log"
