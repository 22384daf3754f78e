"""Test-facing state API: guilds, roles, members, channels; changes are dispatched as events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .models import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, Perm, as_id, snowflake


class StateMixin:
    """Mixed into FakeDiscord: owns users/guilds/channels and keeps connected clients in sync."""

    bot_user: FakeUser
    users: dict[int, FakeUser]
    guilds: dict[int, FakeGuild]
    channels: dict[int, FakeChannel]
    dm_closed: set[int]
    messages: dict[int, dict[str, Any]]
    deleted_messages: list[int]

    def dispatch(self, event: str, data: dict[str, Any]) -> int | None:  # pragma: no cover
        """Implemented by FakeDiscord."""
        raise NotImplementedError

    # ----------------------------------------------------------------- users
    def add_user(
        self, user_id: int | None = None, username: str | None = None, *, bot: bool = False
    ) -> FakeUser:
        """Create (or return the existing) user."""
        uid = snowflake() if user_id is None else int(user_id)
        user = self.users.get(uid)
        if user is None:
            user = self.users[uid] = FakeUser(uid, username or f"user{uid % 100000}", bot=bot)
        elif username:
            user.username = username
        return user

    def set_dm_closed(self, user_id: int, closed: bool = True) -> None:
        """DMs to this user fail with 403 {"code": 50007}."""
        (self.dm_closed.add if closed else self.dm_closed.discard)(int(user_id))

    # ---------------------------------------------------------------- guilds
    def add_guild(
        self,
        name: str = "Guild",
        owner_id: int | None = None,
        *,
        guild_id: int | None = None,
        bot_role_position: int = 10,
        bot_permissions: int = Perm.BOT_DEFAULT,
        channels: Iterable[str] = ("general",),
        dispatch: bool = True,
    ) -> FakeGuild:
        """Create a guild with @everyone, a managed "Bot" role, text channels, owner and bot.

        If a client is connected, GUILD_CREATE is dispatched (the bot "joined" the guild).
        """
        gid = snowflake() if guild_id is None else int(guild_id)
        owner = self.add_user(owner_id, None if owner_id else "owner")
        guild = FakeGuild(id=gid, name=name, owner_id=owner.id)
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", 0, Perm.EVERYONE_DEFAULT)
        bot_role = FakeRole(
            snowflake(),
            gid,
            "Bot",
            bot_role_position,
            bot_permissions,
            managed=True,
            tags={"bot_id": str(self.bot_user.id)},
        )
        guild.roles[bot_role.id] = bot_role
        guild.bot_role_id = bot_role.id
        for position, channel_name in enumerate(channels):
            channel = FakeChannel(snowflake(), channel_name, 0, gid, position)
            guild.channels[channel.id] = self.channels[channel.id] = channel
        guild.members[owner.id] = FakeMember(owner)
        guild.members[self.bot_user.id] = FakeMember(self.bot_user, [bot_role.id])
        self.guilds[gid] = guild
        if dispatch:
            me = guild.members[self.bot_user.id]
            self.dispatch("GUILD_CREATE", guild.create_payload(me, joined=True))
        return guild

    def guild(self, guild_id: int) -> FakeGuild:
        """Return a guild or raise KeyError with a helpful message."""
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise KeyError(f"fake Discord has no guild {guild_id}") from None

    def add_channel(
        self, guild_id: int, name: str, *, type: int = 0, dispatch: bool = True
    ) -> FakeChannel:
        """Add a text channel; dispatches CHANNEL_CREATE."""
        guild = self.guild(guild_id)
        channel = FakeChannel(snowflake(), name, type, guild.id, len(guild.channels))
        guild.channels[channel.id] = self.channels[channel.id] = channel
        if dispatch:
            self.dispatch("CHANNEL_CREATE", channel.payload())
        return channel

    # ----------------------------------------------------------------- roles
    def add_role(
        self,
        guild_id: int,
        name: str,
        position: int = 1,
        managed: bool = False,
        permissions: int = 0,
        *,
        color: int = 0,
        dispatch: bool = True,
    ) -> FakeRole:
        """Add a role (default position 1, below the bot's role); dispatches GUILD_ROLE_CREATE."""
        guild = self.guild(guild_id)
        role = FakeRole(snowflake(), guild.id, name, position, permissions, managed, color)
        guild.roles[role.id] = role
        if dispatch:
            self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def update_role(
        self, guild_id: int, role_id: int, *, dispatch: bool = True, **fields: Any
    ) -> FakeRole:
        """Change role attributes (name, position, permissions, managed, ...)."""
        guild = self.guild(guild_id)
        role = guild.roles[as_id(role_id)]
        for key, value in fields.items():
            if not hasattr(role, key):
                raise AttributeError(f"FakeRole has no field {key!r}")
            setattr(role, key, value)
        if dispatch:
            self.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def delete_message(self, message_id: int, *, dispatch: bool = True) -> None:
        """A message is deleted (by the bot's DELETE, or by hand in the client): later GETs,
        PATCHes and DELETEs of it answer 10008 Unknown Message; MESSAGE_DELETE is sent."""
        message = self.messages.pop(int(message_id))
        self.deleted_messages.append(int(message_id))
        if dispatch:
            data = {"id": message["id"], "channel_id": message["channel_id"]}
            if "guild_id" in message:
                data["guild_id"] = message["guild_id"]
            self.dispatch("MESSAGE_DELETE", data)

    def delete_role(self, guild_id: int, role_id: int, *, dispatch: bool = True) -> None:
        """Delete a role (and take it from every member); dispatches GUILD_ROLE_DELETE."""
        guild = self.guild(guild_id)
        rid = as_id(role_id)
        del guild.roles[rid]
        for member in guild.members.values():
            if rid in member.roles:
                member.roles.remove(rid)
        if dispatch:
            self.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(rid)})

    def bot_role(self, guild_id: int) -> FakeRole:
        """The bot's managed integration role."""
        guild = self.guild(guild_id)
        return guild.roles[guild.bot_role_id]

    def set_bot_top_position(self, guild_id: int, position: int) -> None:
        """Move the bot's role (roles at or above it become unassignable: 50013)."""
        self.update_role(guild_id, self.guild(guild_id).bot_role_id, position=position)

    def set_bot_permissions(self, guild_id: int, permissions: int) -> None:
        """Set the bot role's permissions (e.g. drop MANAGE_ROLES)."""
        self.update_role(guild_id, self.guild(guild_id).bot_role_id, permissions=permissions)

    # --------------------------------------------------------------- members
    def add_member(
        self,
        guild_id: int,
        user_id: int,
        roles: Iterable[int | FakeRole] = (),
        pending: bool = False,
        username: str | None = None,
        dispatch: bool = True,
        *,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a member; dispatches GUILD_MEMBER_ADD (with guild_id) to connected clients."""
        guild = self.guild(guild_id)
        user = self.add_user(user_id, username)
        member = FakeMember(user, [as_id(r) for r in roles], pending, nick)
        guild.members[user.id] = member
        if dispatch:
            self.dispatch("GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(guild.id)})
        return member

    def remove_member(self, guild_id: int, user_id: int, dispatch: bool = True) -> None:
        """Remove a member (left the guild); dispatches GUILD_MEMBER_REMOVE."""
        guild = self.guild(guild_id)
        member = guild.members.pop(int(user_id))
        if dispatch:
            self.dispatch(
                "GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": member.user.payload()}
            )

    def update_member(
        self,
        guild_id: int,
        user_id: int,
        pending: bool | None = None,
        roles: Iterable[int | FakeRole] | None = None,
        dispatch: bool = True,
        *,
        nick: str | None = None,
    ) -> FakeMember:
        """Change pending / roles / nick (None = unchanged); dispatches GUILD_MEMBER_UPDATE."""
        member = self.member(guild_id, user_id)
        if member is None:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}")
        if pending is not None:
            member.pending = pending
        if roles is not None:
            member.roles = [as_id(r) for r in roles]
        if nick is not None:
            member.nick = nick
        if dispatch:
            self.member_updated(int(guild_id), member)
        return member

    def member_updated(self, guild_id: int, member: FakeMember) -> None:
        """Dispatch GUILD_MEMBER_UPDATE for a member whose state changed."""
        self.dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild_id)})

    def member(self, guild_id: int, user_id: int) -> FakeMember | None:
        """A member, or None."""
        return self.guild(guild_id).members.get(int(user_id))

    def member_roles(self, guild_id: int, user_id: int) -> set[int]:
        """The member's role ids (empty if not a member)."""
        member = self.member(guild_id, user_id)
        return set(member.roles) if member else set()

    def has_role(self, guild_id: int, user_id: int, role_id: int | FakeRole) -> bool:
        """Whether the member currently has the role."""
        return as_id(role_id) in self.member_roles(guild_id, user_id)

    def shares_guild(self, user_id: int) -> bool:
        """Whether the user is in any guild with the bot (else Discord refuses DMs)."""
        return any(int(user_id) in g.members for g in self.guilds.values())
