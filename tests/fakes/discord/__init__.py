"""A local fake of Discord (REST + gateway) that the real discord.py client connects to.

Also Discord's OAuth2 for a web shop (authorize page, token exchange, Bearer `/users/@me`,
add-member with `guilds.join`): see the docstring of `oauth.py` for how a test drives it.
"""

from .fake_interaction import FakeInteraction
from .gateway import Connection, Gateway, Session
from .models import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, Perm, snowflake
from .oauth import JoinOp, OAuthGrant
from .openapi import Violation, get_validator
from .ratelimit import Fault
from .responses import RequestRecord, RoleOp
from .server import FakeDiscord

__all__ = [
    "Connection",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Fault",
    "Gateway",
    "JoinOp",
    "OAuthGrant",
    "Perm",
    "RequestRecord",
    "RoleOp",
    "Session",
    "Violation",
    "get_validator",
    "snowflake",
]
