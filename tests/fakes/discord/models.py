"""Fake Discord entities (users, roles, members, channels, guilds) and their JSON payloads."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000


class Perm:
    """Permission bits used by the fake (see Discord's permissions docs)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    MANAGE_MESSAGES = 1 << 13
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    ALL = (1 << 51) - 1
    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_APPLICATION_COMMANDS
    )
    BOT_DEFAULT = MANAGE_ROLES | KICK_MEMBERS | BAN_MEMBERS | CREATE_INSTANT_INVITE


_last_snowflake = [0]


def snowflake() -> int:
    """Return a new, unique, strictly increasing Discord snowflake (time-based)."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    value = max((ms << 22) | (1 << 17), _last_snowflake[0] + 1)
    _last_snowflake[0] = value
    return value


def iso_now() -> str:
    """Current UTC time as Discord's ISO8601 timestamp."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def as_id(value: Any) -> int:
    """Accept an int, a numeric string or any object with an `id` attribute."""
    return int(getattr(value, "id", value))


@dataclass
class FakeUser:
    """A Discord user."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None

    def payload(self) -> dict[str, Any]:
        """User object as sent by Discord."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": self.avatar,
            "avatar_decoration_data": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "primary_guild": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class FakeRole:
    """A guild role; the @everyone role has the guild's id and position 0."""

    id: int
    guild_id: int
    name: str
    position: int = 1
    permissions: int = 0
    managed: bool = False
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    tags: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """Role object as sent by Discord."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.tags is not None:
            data["tags"] = self.tags
        return data


@dataclass
class FakeMember:
    """A guild member: a user plus guild-specific state."""

    user: FakeUser
    roles: list[int] = field(default_factory=list)
    pending: bool = False
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        """The member's user id."""
        return self.user.id

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """Guild member object as sent by Discord."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": self.pending,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class FakeChannel:
    """A guild text channel (type 0) or a DM channel (type 1)."""

    id: int
    name: str | None
    type: int = 0
    guild_id: int | None = None
    position: int = 0
    recipient: FakeUser | None = None

    def payload(self) -> dict[str, Any]:
        """Channel object as sent by Discord."""
        if self.type == 1:
            recipients = [self.recipient.payload()] if self.recipient else []
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": recipients,
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }


@dataclass
class FakeGuild:
    """A guild with its roles, members, channels and bans."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    bans: dict[int, str | None] = field(default_factory=dict)
    bot_role_id: int = 0
    #: Membership Screening (Rules Screening) on: members added by the API start `pending`.
    screening: bool = False
    #: What Discord sends as `preferred_locale` (Community servers choose it; else en-US).
    preferred_locale: str = "en-US"

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role (same id as the guild)."""
        return self.roles[self.id]

    @property
    def default_channel(self) -> FakeChannel:
        """The first text channel."""
        return next(iter(self.channels.values()))

    def top_position(self, user_id: int) -> int:
        """Highest role position of a member (0 = only @everyone)."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        return max((self.roles[r].position for r in member.roles if r in self.roles), default=0)

    def permissions(self, user_id: int) -> int:
        """Guild-level permissions of a member (owner and ADMINISTRATOR get everything)."""
        if user_id == self.owner_id:
            return Perm.ALL
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        for role_id in member.roles if member else ():
            role = self.roles.get(role_id)
            perms |= role.permissions if role else 0
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def payload(self) -> dict[str, Any]:
        """Guild object as returned by `GET /guilds/{id}`."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": ["MEMBER_VERIFICATION_GATE_ENABLED"] if self.screening else [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.preferred_locale,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "incidents_data": None,
        }

    def create_payload(self, self_member: FakeMember, *, joined: bool = False) -> dict[str, Any]:
        """GUILD_CREATE payload. Without the presences intent Discord lists only our member.

        After READY, `unavailable: false` means "became available"; a guild the bot just
        joined comes without the key (discord.py then fires on_guild_join).
        """
        data = self.payload()
        data.update(
            unavailable=False,
            joined_at=self_member.joined_at,
            large=len(self.members) >= 250,
            member_count=len(self.members),
            members=[self_member.payload()],
            channels=[c.payload() for c in self.channels.values()],
            threads=[],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            lazy=True,
        )
        for channel in data["channels"]:
            channel.pop("guild_id", None)
        if joined:
            del data["unavailable"]
        return data
