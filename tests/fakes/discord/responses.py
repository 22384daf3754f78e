"""HTTP plumbing: Discord error bodies, exact-JSON responses, request records and body parsing."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import BodyPartReader, web

# Discord's real error bodies (message, code).
UNKNOWN_GUILD = ("Unknown Guild", 10004)
UNKNOWN_CHANNEL = ("Unknown Channel", 10003)
UNKNOWN_MEMBER = ("Unknown Member", 10007)
UNKNOWN_MESSAGE = ("Unknown Message", 10008)
UNKNOWN_ROLE = ("Unknown Role", 10011)
UNKNOWN_WEBHOOK = ("Unknown Webhook", 10015)
UNKNOWN_BAN = ("Unknown Ban", 10026)
UNKNOWN_INTERACTION = ("Unknown interaction", 10062)
MISSING_ACCESS = ("Missing Access", 50001)
CANNOT_DM = ("Cannot send messages to this user", 50007)
CANNOT_EDIT_OTHERS = ("Cannot edit a message authored by another user", 50005)
EMPTY_MESSAGE = ("Cannot send an empty message", 50006)
MISSING_PERMISSIONS = ("Missing Permissions", 50013)
INVALID_WEBHOOK_TOKEN = ("Invalid Webhook Token", 50027)
INVALID_FORM_BODY = ("Invalid Form Body", 50035)
INVALID_OAUTH_TOKEN = ("Invalid OAuth2 access token", 50025)
USER_BANNED = ("The user is banned from this guild.", 40007)
#: The upload limit of a guild without boosts (the interaction's `attachment_size_limit`).
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
ENTITY_TOO_LARGE = ("Request entity too large", 40005)
ALREADY_ACKNOWLEDGED = ("Interaction has already been acknowledged.", 40060)


class DiscordHTTPError(Exception):
    """Raised by route handlers; turned into a Discord-shaped JSON error response."""

    def __init__(self, status: int, error: tuple[str, int], **extra: Any) -> None:
        """Build the `{message, code, ...}` body for `status`."""
        super().__init__(f"{status} {error[0]} ({error[1]})")
        self.status = status
        self.body = {"message": error[0], "code": error[1], **extra}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A response whose Content-Type is exactly `application/json` (discord.py requires it)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def no_content() -> web.Response:
    """204 No Content."""
    return web.Response(status=204)


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class ParsedBody:
    """The request body: JSON (or multipart `payload_json`) plus any uploaded files."""

    present: bool = False
    content_type: str | None = None
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    error: str | None = None
    #: An `application/x-www-form-urlencoded` body (the OAuth2 token endpoints take these).
    form: dict[str, str] | None = None


async def read_body(request: web.Request) -> ParsedBody:
    """Parse JSON or multipart bodies; multipart's `payload_json` becomes `.json`."""
    body = ParsedBody(content_type=request.content_type if request.body_exists else None)
    if not request.body_exists:
        return body
    if request.content_type == "multipart/form-data":
        body.present = True
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            raw = await part.read()
            if part.name == "payload_json":
                body.json = _loads(raw, body)
            else:
                ctype = part.headers.get("Content-Type")
                body.files.append(UploadedFile(part.name or "", part.filename, ctype, bytes(raw)))
        return body
    raw = await request.read()
    body.present = bool(raw)
    if raw and request.content_type == "application/json":
        body.json = _loads(raw, body)
    elif request.content_type == "application/x-www-form-urlencoded":
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        body.form = dict(pairs)
        body.error = f"unexpected content type {request.content_type!r}"
    elif raw:
        body.error = f"unexpected content type {request.content_type!r}"
    return body


def _loads(raw: bytes | bytearray, body: ParsedBody) -> Any:
    """Parse JSON, remembering a decode error on `body`."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        body.error = f"invalid JSON: {exc}"
        return None


@dataclass
class RequestRecord:
    """One REST request the fake received. `path` is relative to `/api/v10`."""

    method: str
    path: str
    route_template: str | None
    json: Any
    query: dict[str, str]
    headers: dict[str, str]
    time: float
    status: int = 0
    files: list[UploadedFile] = field(default_factory=list)
    #: A form body (OAuth2 token requests), `client_secret` masked.
    form: dict[str, str] | None = None
    #: The fake's port the request arrived on (`FakeDiscord.add_listener`: which process).
    port: int = 0

    @property
    def reason(self) -> str | None:
        """The decoded `X-Audit-Log-Reason` header, if any."""
        value = self.headers.get("X-Audit-Log-Reason")
        return urllib.parse.unquote(value) if value is not None else None


class RoleOp(NamedTuple):
    """A PUT (add) or DELETE (remove) on `/guilds/{g}/members/{u}/roles/{r}` and its outcome."""

    op: str
    guild_id: int
    user_id: int
    role_id: int
    reason: str | None
    status: int


RECORDED_HEADERS = ("Authorization", "Content-Type", "User-Agent", "X-Audit-Log-Reason")

BODY_KEY = web.RequestKey("body", ParsedBody)
RECORD_KEY = web.RequestKey("record", RequestRecord)
