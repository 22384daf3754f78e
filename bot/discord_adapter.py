"""The one place that turns delivery actions into discord.py calls and maps its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import aiohttp
import discord
from discord.ext import commands

from bot.errors import MemberMissing, PermanentFailure, TransientFailure

T = TypeVar("T")

UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
MISSING_PERMISSIONS = 50013
CANNOT_DM = 50007


class DiscordAdapter:
    """Implements bot.delivery.DiscordActions with raw HTTP calls (no member cache needed)."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    async def wait_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        await self._call(
            self.bot.http.add_role(guild_id, user_id, role_id, reason=reason),
            guild_id=guild_id,
            role_id=role_id,
        )

    async def member_role_ids(self, guild_id: int, user_id: int) -> frozenset[int]:
        """The member's current roles (one GET; raises MemberMissing if not in the guild)."""
        member: Any = await self._call(
            self.bot.http.get_member(guild_id, user_id), guild_id=guild_id
        )
        return frozenset(int(role) for role in member["roles"])

    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        try:
            await self._call(
                self.bot.http.remove_role(guild_id, user_id, role_id, reason=reason),
                guild_id=guild_id,
                role_id=role_id,
            )
        except MemberMissing:
            return  # not in the server: nothing to remove

    async def send_dm(
        self, user_id: int, content: str, buttons: Sequence[tuple[str, str]] = ()
    ) -> None:
        channel = await self._call(self.bot.http.start_private_message(user_id))
        await self.send_channel(int(channel["id"]), content, buttons)

    async def send_channel(
        self,
        channel_id: int,
        content: str,
        buttons: Sequence[tuple[str, str]] = (),
        *,
        mentions: bool = True,
    ) -> None:
        """Post `content` with (label, custom_id) buttons; they are answered by the
        DynamicItems of cogs/notices.py, also after a restart. `mentions=False`: nobody
        named in it is pinged (the admin log)."""
        view = None
        if buttons:
            view = discord.ui.View(timeout=None)
            for label, custom_id in buttons:
                view.add_item(discord.ui.Button(label=label, custom_id=custom_id))
        params = discord.http.handle_message_parameters(
            content=content,
            view=view or discord.utils.MISSING,
            allowed_mentions=discord.utils.MISSING if mentions else discord.AllowedMentions.none(),
        )
        await self._call(self.bot.http.send_message(channel_id, params=params))

    def guild_name(self, guild_id: int) -> str | None:
        guild = self.bot.get_guild(guild_id)
        return guild.name if guild is not None else None

    async def kick(self, guild_id: int, user_id: int, reason: str) -> None:
        await self._call(self.bot.http.kick(user_id, guild_id, reason=reason), guild_id=guild_id)

    async def ban(self, guild_id: int, user_id: int, reason: str) -> None:
        await self._call(self.bot.http.ban(user_id, guild_id, 0, reason=reason), guild_id=guild_id)

    async def create_invite(self, channel_id: int, reason: str) -> str:
        invite = await self._call(
            self.bot.http.create_invite(
                channel_id, reason=reason, max_age=86400, max_uses=1, unique=True
            )
        )
        return f"https://discord.gg/{invite['code']}"

    async def member_roles(self, guild_id: int) -> AsyncIterator[tuple[int, frozenset[int]]]:
        """Every member of the guild with their role ids, 1,000 per REST call, uncached."""
        after = 0
        while True:
            page: Any = await self._call(
                self.bot.http.get_members(guild_id, 1000, after), guild_id=guild_id
            )
            for member in page:
                yield int(member["user"]["id"]), frozenset(int(r) for r in member["roles"])
            if len(page) < 1000:
                return
            after = int(page[-1]["user"]["id"])

    async def _call(
        self, request: Awaitable[T], *, guild_id: int | None = None, role_id: int | None = None
    ) -> T:
        try:
            return await request
        except discord.Forbidden as exc:
            if exc.code == CANNOT_DM:
                raise PermanentFailure("the member does not accept DMs from this server") from None
            raise PermanentFailure(self._forbidden_reason(guild_id, role_id)) from None
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MEMBER:
                raise MemberMissing() from None
            if exc.code == UNKNOWN_ROLE:
                raise PermanentFailure(f"role {role_id} no longer exists") from None
            raise PermanentFailure(f"Discord says not found ({exc.code}: {exc.text})") from None
        except discord.RateLimited as exc:
            raise TransientFailure("rate limited", retry_after=exc.retry_after) from None
        except discord.DiscordServerError as exc:
            raise TransientFailure(f"Discord error {exc.status}") from None
        except discord.HTTPException as exc:
            if exc.status == 429:
                raise TransientFailure("rate limited") from None
            raise PermanentFailure(
                f"Discord refused ({exc.status} {exc.code}: {exc.text})"
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientFailure(f"network error: {type(exc).__name__}") from None

    def _forbidden_reason(self, guild_id: int | None, role_id: int | None) -> str:
        """Say why in words an admin can act on: hierarchy or a missing permission."""
        guild = self.bot.get_guild(guild_id) if guild_id else None
        if guild is None or guild.me is None:
            return "Missing Permissions: the bot is not allowed to do this"
        if not guild.me.guild_permissions.manage_roles and role_id is not None:
            return "Missing Permissions: the bot lacks Manage Roles"
        role = guild.get_role(role_id) if role_id else None
        if role is not None and role >= guild.me.top_role:
            return (
                f"Missing Permissions: role @{role.name} is at or above the bot's highest role "
                f"@{guild.me.top_role.name}; move the bot's role above it in "
                "Server Settings → Roles"
            )
        if role is not None and role.managed:
            return f"Missing Permissions: role @{role.name} is managed by an integration"
        return "Missing Permissions: the bot is not allowed to do this"


def role_problem(guild: discord.Guild, role: discord.Role) -> str | None:
    """Why the bot cannot assign `role` in `guild`, or None if it can."""
    me = guild.me
    if role.is_default():
        return "@everyone cannot be sold."
    if role.managed:
        return f"@{role.name} is managed by an integration or bot and cannot be assigned."
    if me is None:
        return "The bot is not in this server."
    if not me.guild_permissions.manage_roles:
        return "The bot needs the Manage Roles permission to give roles."
    if role >= me.top_role:
        return (
            f"@{role.name} is at or above the bot's highest role (@{me.top_role.name}); "
            "move the bot's role above it in Server Settings → Roles, then try again."
        )
    return None
