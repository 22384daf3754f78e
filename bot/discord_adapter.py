"""The one place that turns delivery actions into discord.py calls and maps its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import aiohttp
import discord
from discord.ext import commands

from bot.api.directory import ChannelInfo, RoleInfo
from bot.errors import MemberMissing, MessageGone, PermanentFailure, TransientFailure
from bot.i18n import _

T = TypeVar("T")

UNKNOWN_CHANNEL = 10003
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
UNKNOWN_BAN = 10026
MISSING_PERMISSIONS = 50013
CANNOT_DM = 50007
BANNED_FROM_GUILD = 40007
MAX_GUILDS = 30001
INVALID_OAUTH_TOKEN = 50025
#: A guild whose members must pass membership screening before they are full members.
SCREENING = "MEMBER_VERIFICATION_GATE_ENABLED"


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
        """The member's current roles (one GET). Raises MemberMissing if they are not in the
        guild, or not past membership screening yet (`pending`): roles wait for both, and the
        member's screening update wakes the job — whichever of that update and this job
        comes first."""
        member: Any = await self._call(
            self.bot.http.get_member(guild_id, user_id), guild_id=guild_id
        )
        if member.get("pending"):
            raise MemberMissing()
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

    async def post_message(self, channel_id: int, body: dict[str, Any]) -> int:
        """Send a message whose JSON body (content, embeds, components) was built elsewhere
        (bot/panels.py); return its id. Buttons in it reach the bot's DynamicItems."""
        message: Any = await self._call(
            self.bot.http.send_message(channel_id, params=_json_params(body))
        )
        return int(message["id"])

    async def edit_message(self, channel_id: int, message_id: int, body: dict[str, Any]) -> None:
        """PATCH the bot's message; MessageGone when it (or its channel) was deleted."""
        await self._call(
            self.bot.http.edit_message(channel_id, message_id, params=_json_params(body))
        )

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete the bot's message; MessageGone when it was already deleted."""
        await self._call(self.bot.http.delete_message(channel_id, message_id))

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

    async def add_member(
        self, guild_id: int, user_id: int, access_token: str, role_ids: list[int], reason: str
    ) -> bool:
        """PUT /guilds/{g}/members/{u} with the user's OAuth token (FACTS: 201 with the new
        member, 204 when already a member, `roles` then ignored). True when they were added.

        Under membership screening no roles are sent: the grant jobs give them once the
        member has passed it (SPEC §7). discord.py has no call for this route: a raw Route.
        """
        guild = self.bot.get_guild(guild_id)
        screened = guild is not None and SCREENING in guild.features
        payload: dict[str, Any] = {"access_token": access_token}
        if role_ids and not screened:
            payload["roles"] = [str(role) for role in role_ids]
        route = discord.http.Route(
            "PUT", "/guilds/{guild_id}/members/{user_id}", guild_id=guild_id, user_id=user_id
        )

        async def put() -> Any:
            try:
                return await self.bot.http.request(route, json=payload, reason=reason)
            except discord.Forbidden as exc:
                if exc.code == BANNED_FROM_GUILD:
                    raise PermanentFailure("the buyer is banned from this server") from None
                raise PermanentFailure(
                    "Missing Permissions: the bot needs Create Invite (and Manage Roles for "
                    "the roles) to add buyers to the server"
                ) from None
            except discord.HTTPException as exc:
                if exc.code == INVALID_OAUTH_TOKEN or exc.status == 401:
                    raise PermanentFailure(
                        "the buyer's Discord login is no longer valid; they can join with an "
                        "invite and get their roles then"
                    ) from None
                if exc.code == MAX_GUILDS:
                    raise PermanentFailure(
                        "the buyer is in too many servers to join another"
                    ) from None
                raise

        answer = await self._call(put(), guild_id=guild_id)
        return isinstance(answer, dict)  # 201: the member object; 204: no body

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        """GET /guilds/{g}/bans/{u}: 200 = banned, Unknown Ban = not banned."""

        async def get() -> bool:
            try:
                await self.bot.http.get_ban(user_id, guild_id)
            except discord.NotFound as exc:
                if exc.code == UNKNOWN_BAN:
                    return False
                raise
            return True

        return await self._call(get(), guild_id=guild_id)

    async def invite_url(self, guild_id: int, channel_id: int | None) -> str | None:
        """A way into the server for a web buyer: the guild's vanity URL, else an invite to
        `channel_id` (a product's create_invite channel; reused, not one per visitor)."""
        guild = self.bot.get_guild(guild_id)
        if guild is not None and guild.vanity_url_code:
            return f"https://discord.gg/{guild.vanity_url_code}"
        if channel_id is None:
            return None
        invite: Any = await self._call(
            self.bot.http.create_invite(
                channel_id, reason="shopbot web shop", max_age=7 * 86400, max_uses=0, unique=False
            )
        )
        return f"https://discord.gg/{invite['code']}"

    # Discord's store (SPEC §6b; FACTS: discord.py's `Client.entitlements` drops
    # exclude_deleted=False without `before=`, so the raw route is used) --------------------

    def _app_id(self) -> int:
        app_id = self.bot.application_id
        if app_id is None:
            raise TransientFailure("the application id is not known yet (not logged in)")
        return app_id

    async def list_skus(self) -> list[dict[str, Any]]:
        """GET /applications/{app}/skus, as Discord's JSON."""
        skus: Any = await self._call(self.bot.http.get_skus(self._app_id()))
        return list(skus)

    async def list_entitlements(self, after: int, limit: int) -> list[dict[str, Any]]:
        """One page of GET /applications/{app}/entitlements after `after`, deleted ones too."""
        page: Any = await self._call(
            self.bot.http.get_entitlements(
                self._app_id(), after=after, limit=limit, exclude_deleted=False
            )
        )
        return list(page)

    async def consume_entitlement(self, entitlement_id: int) -> None:
        """POST …/entitlements/{id}/consume (a consumable SKU, once delivered)."""
        await self._call(self.bot.http.consume_entitlement(self._app_id(), entitlement_id))

    def role_name(self, guild_id: int, role_id: int) -> str | None:
        """The role's name from the gateway cache (None: not known)."""
        guild = self.bot.get_guild(guild_id)
        role = guild.get_role(role_id) if guild is not None else None
        return None if role is None else role.name

    def application_id(self) -> int | None:
        """The application id discord.py read for the token at login."""
        return self.bot.application_id

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
            if exc.code in (UNKNOWN_MESSAGE, UNKNOWN_CHANNEL):
                raise MessageGone(f"Discord says {exc.text or 'unknown message'}") from None
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


def _json_params(body: dict[str, Any]) -> discord.http.MultipartParameters:
    """A ready JSON body as discord.py's request parameters (no files)."""
    return discord.http.MultipartParameters(payload=body, multipart=None, files=None)


def role_problem(guild: discord.Guild, role: discord.Role) -> str | None:
    """Why the bot cannot assign `role` in `guild`, or None if it can (in the current
    locale: an admin's interaction, English for the API)."""
    me = guild.me
    if role.is_default():
        return _("@everyone cannot be sold.")
    if role.managed:
        return _(
            "@{role} is managed by an integration or bot and cannot be assigned.", role=role.name
        )
    if me is None:
        return _("The bot is not in this server.")
    if not me.guild_permissions.manage_roles:
        return _("The bot needs the Manage Roles permission to give roles.")
    if role >= me.top_role:
        return _(
            "@{role} is at or above the bot's highest role (@{top}); move the bot's role "
            "above it in Server Settings → Roles, then try again.",
            role=role.name,
            top=me.top_role.name,
        )
    return None


class GuildDirectoryAdapter:
    """bot.api.directory.GuildDirectory from the gateway's guild cache (roles and channels
    come with GUILD_CREATE and stay current through their events)."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    def guild_roles(self, guild_id: int) -> list[RoleInfo] | None:
        guild = self.bot.get_guild(guild_id)
        if guild is None:
            return None
        return [
            RoleInfo(
                id=role.id,
                name=role.name,
                position=role.position,
                managed=role.managed,
                problem=role_problem(guild, role),
            )
            for role in sorted(guild.roles, key=lambda r: (-r.position, r.id))
        ]

    def text_channels(self, guild_id: int) -> list[ChannelInfo] | None:
        guild = self.bot.get_guild(guild_id)
        if guild is None:
            return None
        return [
            ChannelInfo(
                id=channel.id,
                name=channel.name,
                position=channel.position,
                parent_id=channel.category_id,
            )
            for channel in sorted(guild.text_channels, key=lambda c: (c.position, c.id))
        ]
