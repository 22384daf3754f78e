"""Interaction callbacks, followups and @original edits (the interaction webhook routes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import responses as R
from .fake_interaction import FakeInteraction
from .messages import apply_edit, build_message
from .models import snowflake
from .responses import DiscordHTTPError, json_response, no_content

if TYPE_CHECKING:
    from .server import FakeDiscord

MESSAGE_CALLBACKS = {4, 5, 7}
ALLOWED_CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
FOLLOWUP_TTL = 15 * 60.0


class InteractionRoutes:
    """REST handlers for `/interactions/...` and `/webhooks/{app}/{token}/...`."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Bind to the fake whose state the handlers use."""
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table (relative to /api/v10); `@original` before `{message_id}`."""
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        return [
            web.post("/interactions/{interaction_id}/{interaction_token}/callback", self.callback),
            web.post(hook, self.followup),
            web.get(hook + "/messages/@original", self.get_original),
            web.patch(hook + "/messages/@original", self.edit_original),
            web.delete(hook + "/messages/@original", self.delete_original),
            web.get(hook + "/messages/{message_id}", self.get_message),
            web.patch(hook + "/messages/{message_id}", self.edit_message),
            web.delete(hook + "/messages/{message_id}", self.delete_message),
        ]

    # ------------------------------------------------------------- helpers
    def _interaction(self, request: web.Request) -> FakeInteraction:
        """Find the interaction for a webhook route (app id + token)."""
        fake = self.fake
        inter = fake._interaction_by_token(request.match_info["webhook_token"])
        if inter is None or request.match_info["webhook_id"] != str(fake.application_id):
            raise DiscordHTTPError(404, R.UNKNOWN_WEBHOOK)
        if fake._loop_time() - inter.created_at > FOLLOWUP_TTL:
            raise DiscordHTTPError(401, R.INVALID_WEBHOOK_TOKEN)
        if not inter.acknowledged:
            raise DiscordHTTPError(404, R.UNKNOWN_WEBHOOK)
        return inter

    def _new_message(
        self, inter: FakeInteraction, body: dict[str, Any], flags: int, request: web.Request
    ) -> dict[str, Any]:
        """Store a new message that belongs to the interaction."""
        fake = self.fake
        message = build_message(
            snowflake(),
            inter.channel_id,
            fake.bot_user.payload(),
            body,
            flags=flags,
            guild_id=inter.guild_id,
            application_id=fake.application_id,
            message_type=20 if inter.type == 2 else 0,
            attachments=fake._attachments(request[R.BODY_KEY]),
        )
        fake.messages[int(message["id"])] = message
        inter.message_ids.append(int(message["id"]))
        return message

    @staticmethod
    def _json(request: web.Request) -> dict[str, Any]:
        """The request's JSON object (payload_json for multipart), or {}."""
        body = request[R.BODY_KEY].json
        return body if isinstance(body, dict) else {}

    def _original(self, inter: FakeInteraction) -> dict[str, Any]:
        """The @original message or 404 Unknown Message."""
        message = self.fake.messages.get(inter.original_message_id or 0)
        if message is None:
            raise DiscordHTTPError(404, R.UNKNOWN_MESSAGE)
        return message

    def _owned(self, inter: FakeInteraction, request: web.Request) -> dict[str, Any]:
        """A message of this interaction by id or 404 Unknown Message."""
        mid = (
            int(request.match_info["message_id"])
            if request.match_info["message_id"].isdigit()
            else 0
        )
        if mid not in inter.message_ids or mid not in self.fake.messages:
            raise DiscordHTTPError(404, R.UNKNOWN_MESSAGE)
        return self.fake.messages[mid]

    # ------------------------------------------------------------ callback
    async def callback(self, request: web.Request) -> web.Response:
        """POST /interactions/{id}/{token}/callback (discord.py needs ?with_response JSON)."""
        fake = self.fake
        inter = fake.interactions.get(int(request.match_info["interaction_id"]))
        if inter is None or inter.token != request.match_info["interaction_token"]:
            raise DiscordHTTPError(404, R.UNKNOWN_INTERACTION)
        if inter.acknowledged:
            raise DiscordHTTPError(400, R.ALREADY_ACKNOWLEDGED)
        timeout = fake.interaction_response_timeout
        if timeout is not None and fake._loop_time() - inter.created_at > timeout:
            raise DiscordHTTPError(404, R.UNKNOWN_INTERACTION)
        body = self._json(request)
        ctype = body.get("type")
        if ctype not in ALLOWED_CALLBACKS.get(inter.type, set()):
            raise DiscordHTTPError(
                400, R.INVALID_FORM_BODY, errors={"type": f"callback {ctype} invalid here"}
            )
        data = body.get("data") or {}
        message = None
        if ctype in (4, 5):
            flags = int(data.get("flags") or 0) & 64 | (128 if ctype == 5 else 0)
            message = self._new_message(inter, data if ctype == 4 else {}, flags, request)
            inter.original_message_id = int(message["id"])
        elif ctype == 7:
            source = inter.payload.get("message") or {}
            message = fake.messages.get(int(source.get("id", 0)))
            if message is not None:
                apply_edit(message, data)
                inter.original_message_id = int(message["id"])
        inter.callback_type = ctype
        inter._record("callback", body, message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return no_content()
        info: dict[str, Any] = {
            "id": str(inter.id),
            "type": inter.type,
            "activity_instance_id": None,
        }
        result: dict[str, Any] = {"interaction": info}
        if message is not None:
            info.update(
                response_message_id=message["id"],
                response_message_loading=bool(message["flags"] & 128),
                response_message_ephemeral=bool(message["flags"] & 64),
            )
            result["resource"] = {"type": ctype, "message": message}
        return json_response(result)

    # ----------------------------------------------------------- followups
    async def followup(self, request: web.Request) -> web.Response:
        """POST /webhooks/{app}/{token}: the first one after a defer fills the loading message."""
        inter = self._interaction(request)
        body = self._json(request)
        original = self.fake.messages.get(inter.original_message_id or 0)
        if original is not None and original["flags"] & 128:
            message = apply_edit(original, body)
            message["attachments"] += self.fake._attachments(request[R.BODY_KEY])
        else:
            message = self._new_message(inter, body, int(body.get("flags") or 0) & 64, request)
        inter._record("followup", body, message)
        wait = request.query.get("wait", "false") in ("1", "true", "True")
        return json_response(message) if wait else no_content()

    async def get_original(self, request: web.Request) -> web.Response:
        """GET .../messages/@original."""
        return json_response(self._original(self._interaction(request)))

    async def edit_original(self, request: web.Request) -> web.Response:
        """PATCH .../messages/@original."""
        inter = self._interaction(request)
        body = self._json(request)
        message = apply_edit(self._original(inter), body)
        message["attachments"] += self.fake._attachments(request[R.BODY_KEY])
        inter._record("edit_original", body, message)
        return json_response(message)

    async def delete_original(self, request: web.Request) -> web.Response:
        """DELETE .../messages/@original."""
        inter = self._interaction(request)
        message = self._original(inter)
        del self.fake.messages[int(message["id"])]
        inter._record("delete_original", None, None)
        return no_content()

    async def get_message(self, request: web.Request) -> web.Response:
        """GET .../messages/{id} (a message of this interaction)."""
        return json_response(self._owned(self._interaction(request), request))

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH .../messages/{id}."""
        inter = self._interaction(request)
        body = self._json(request)
        message = apply_edit(self._owned(inter, request), body)
        inter._record("edit_message", body, message)
        return json_response(message)

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE .../messages/{id}."""
        inter = self._interaction(request)
        message = self._owned(inter, request)
        del self.fake.messages[int(message["id"])]
        inter._record("delete_message", None, None)
        return no_content()
