"""The Discord facts the integration API reads: a guild's roles and text channels, and why
the bot could not give a role. Implemented by bot/discord_adapter.py from the gateway cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RoleInfo:
    id: int
    name: str
    position: int
    managed: bool
    #: Why the bot cannot give this role (hierarchy, @everyone, managed), or None.
    problem: str | None


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    name: str
    position: int
    parent_id: int | None


class GuildDirectory(Protocol):
    """None from the listings: the bot is not in that guild."""

    def guild_roles(self, guild_id: int) -> list[RoleInfo] | None: ...
    def text_channels(self, guild_id: int) -> list[ChannelInfo] | None: ...
