"""REST handlers for channels: DM channels, messages (send, edit, delete; DM or guild), invites."""

from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import responses as R
from .messages import apply_edit, build_message
from .models import FakeChannel, Perm, iso_now, snowflake
from .responses import DiscordHTTPError, json_response, no_content
from .rest import parse_id, require

if TYPE_CHECKING:
    from .server import FakeDiscord


class ChannelRoutes:
    """Channel routes (relative to /api/v10)."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Bind to the fake whose state the handlers use."""
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table."""
        return [
            web.post("/users/@me/channels", self.create_dm),
            web.get("/channels/{channel_id}", self.get_channel),
            web.post("/channels/{channel_id}/messages", self.send_message),
            web.get("/channels/{channel_id}/messages/{message_id}", self.get_message),
            web.patch("/channels/{channel_id}/messages/{message_id}", self.edit_message),
            web.delete("/channels/{channel_id}/messages/{message_id}", self.delete_message),
            web.post("/channels/{channel_id}/invites", self.create_invite),
        ]

    async def create_dm(self, request: web.Request) -> web.Response:
        """POST /users/@me/channels {recipient_id}."""
        recipient = (request[R.BODY_KEY].json or {}).get("recipient_id")
        if recipient is None:
            raise DiscordHTTPError(400, R.INVALID_FORM_BODY)
        return json_response(self.fake._dm_channel(parse_id(str(recipient))).payload())

    async def get_channel(self, request: web.Request) -> web.Response:
        """GET /channels/{c}."""
        channel = self.fake.channels.get(parse_id(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordHTTPError(404, R.UNKNOWN_CHANNEL)
        return json_response(channel.payload())

    async def send_message(self, request: web.Request) -> web.Response:
        """POST /channels/{c}/messages: DMs fail with 50007 when closed or no mutual guild."""
        fake = self.fake
        channel = fake.channels.get(parse_id(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordHTTPError(404, R.UNKNOWN_CHANNEL)
        body = request[R.BODY_KEY].json or {}
        if channel.type == 1:
            assert channel.recipient is not None
            uid = channel.recipient.id
            if uid in fake.dm_closed or not fake.shares_guild(uid):
                raise DiscordHTTPError(403, R.CANNOT_DM)
        else:
            require(fake.guilds[channel.guild_id or 0], fake.bot_user.id, Perm.SEND_MESSAGES)
        attachments = fake._attachments(request[R.BODY_KEY])
        fields = ("content", "embeds", "components", "sticker_ids", "poll")
        if not attachments and not any(body.get(k) for k in fields):
            raise DiscordHTTPError(400, R.EMPTY_MESSAGE)
        message = build_message(
            snowflake(),
            channel.id,
            fake.bot_user.payload(),
            body,
            flags=int(body.get("flags") or 0),
            guild_id=channel.guild_id,
            attachments=attachments,
        )
        fake.messages[int(message["id"])] = message
        if channel.type == 1:
            fake.dms.append((channel.recipient.id, message))  # type: ignore[union-attr]
        else:
            fake.channel_messages.append((channel.id, message))
        return json_response(message)

    def _message(self, request: web.Request) -> tuple[FakeChannel, dict[str, Any]]:
        """The channel and a message in it from the URL: 10003 Unknown Channel, 10008 Unknown
        Message (also for a message id of another channel, as Discord answers)."""
        channel = self.fake.channels.get(parse_id(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordHTTPError(404, R.UNKNOWN_CHANNEL)
        message = self.fake.messages.get(parse_id(request.match_info["message_id"]))
        if message is None or message["channel_id"] != str(channel.id):
            raise DiscordHTTPError(404, R.UNKNOWN_MESSAGE)
        return channel, message

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /channels/{c}/messages/{m}."""
        return json_response(self._message(request)[1])

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH /channels/{c}/messages/{m}: only the bot's own messages (else 50005)."""
        fake = self.fake
        channel, message = self._message(request)
        if message["author"]["id"] != str(fake.bot_user.id):
            raise DiscordHTTPError(403, R.CANNOT_EDIT_OTHERS)
        body = request[R.BODY_KEY].json or {}
        edited = apply_edit(message, body)
        fake.message_edits.append((channel.id, copy.deepcopy(edited)))
        return json_response(edited)

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE /channels/{c}/messages/{m}: own messages freely, others' with Manage Messages."""
        fake = self.fake
        channel, message = self._message(request)
        if message["author"]["id"] != str(fake.bot_user.id):
            if channel.guild_id is None:
                raise DiscordHTTPError(403, R.CANNOT_EDIT_OTHERS)
            require(fake.guilds[channel.guild_id], fake.bot_user.id, Perm.MANAGE_MESSAGES)
        fake.delete_message(int(message["id"]))
        return no_content()

    async def create_invite(self, request: web.Request) -> web.Response:
        """POST /channels/{c}/invites."""
        fake = self.fake
        channel = fake.channels.get(parse_id(request.match_info["channel_id"]))
        if channel is None or channel.guild_id is None:
            raise DiscordHTTPError(404, R.UNKNOWN_CHANNEL)
        guild = fake.guilds[channel.guild_id]
        require(guild, fake.bot_user.id, Perm.CREATE_INSTANT_INVITE)
        body = request[R.BODY_KEY].json or {}
        invite = {
            "type": 0,
            "code": secrets.token_urlsafe(6),
            "guild": {"id": str(guild.id), "name": guild.name, "icon": None, "features": []},
            "channel": {"id": str(channel.id), "name": channel.name, "type": channel.type},
            "inviter": fake.bot_user.payload(),
            "uses": 0,
            "max_uses": body.get("max_uses", 0),
            "max_age": body.get("max_age", 86400),
            "temporary": bool(body.get("temporary")),
            "unique": bool(body.get("unique")),
            "created_at": iso_now(),
            "expires_at": None,
        }
        fake.invites.append(invite)
        return json_response(invite)
