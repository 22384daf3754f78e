"""The request pipeline: record, validate against OpenAPI, inject faults, authorize, rate-limit."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import responses as R
from .oauth import AUTH_KEY, BEARER_ROUTES, TOKEN_PATHS, Identity, mask_form
from .ratelimit import ROLE_ROUTE
from .responses import DiscordHTTPError, RequestRecord, RoleOp, json_response, read_body

if TYPE_CHECKING:
    from .server import FakeDiscord

API_PREFIX = "/api/v10"
NO_AUTH_PREFIXES = ("/interactions/", "/webhooks/", "/gateway", *TOKEN_PATHS)


def _snowflake_or_zero(value: str | None) -> int:
    """Parse an id from the URL for bookkeeping (malformed → 0)."""
    return int(value) if value and value.isdigit() else 0


def _local_port(request: web.Request) -> int:
    """The port of ours the request came in on (0 when the transport is gone)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0


class Pipeline:
    """Wraps every `/api/v10` handler; everything observable lands on the FakeDiscord."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Bind to the fake that receives records, violations and role ops."""
        self.fake = fake

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Record → validate → respond (faults, auth, buckets, handler) → bookkeeping."""
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        fake = self.fake
        body = await read_body(request)
        headers = {h: request.headers[h] for h in R.RECORDED_HEADERS if h in request.headers}
        if "Authorization" in headers:  # keep the scheme, never the token itself
            headers["Authorization"] = headers["Authorization"].split(" ")[0] + " ***"
        record = RequestRecord(
            method=request.method,
            path=request.path.removeprefix(API_PREFIX),
            route_template=self._route_template(request),
            json=body.json,
            query=dict(request.query),
            headers=headers,
            time=asyncio.get_running_loop().time(),
            files=body.files,
            form=mask_form(body.form) if body.form is not None else None,
            port=_local_port(request),
        )
        request[R.BODY_KEY], request[R.RECORD_KEY] = body, record
        self._validate(request, record, body)
        response = await self._respond(request, handler, record)
        record.status = response.status
        if response.status in (401, 403, 429):
            fake.invalid_request_count += 1
        if record.route_template == ROLE_ROUTE:
            m = request.match_info
            fake.role_ops.append(
                RoleOp(
                    "add" if request.method == "PUT" else "remove",
                    _snowflake_or_zero(m.get("guild_id")),
                    _snowflake_or_zero(m.get("user_id")),
                    _snowflake_or_zero(m.get("role_id")),
                    record.reason,
                    response.status,
                )
            )
        fake.requests.append(record)
        fake._notify()
        return response

    @staticmethod
    def _route_template(request: web.Request) -> str | None:
        """The matched aiohttp route as a spec-style template (None when nothing matched)."""
        resource = request.match_info.route.resource
        canonical = getattr(resource, "canonical", None)
        if canonical is None:
            return None
        return canonical.removeprefix(API_PREFIX)

    def _validate(self, request: web.Request, record: RequestRecord, body: R.ParsedBody) -> None:
        """Check the request against Discord's OpenAPI spec; record violations."""
        validator = self.fake._validator
        if validator is None or record.path in TOKEN_PATHS:
            return  # Discord's spec omits the OAuth2 token endpoints; their handler checks them
        raw = urllib.parse.unquote(request.raw_path.split("?")[0].removeprefix(API_PREFIX))
        template, errors = validator.validate(
            request.method, raw, record.query, body.content_type, body.json, body.present
        )
        if template is not None:
            record.route_template = template
        for error in [body.error, *errors] if body.error else errors:
            self.fake._violation(request.method, record.path, template, error)

    def _identify(self, request: web.Request, record: RequestRecord) -> Identity | None:
        """The bot token, or a live Bearer token on a route that takes one (with its scope)."""
        auth = request.headers.get("Authorization", "")
        if auth == f"Bot {self.fake.token}":
            return Identity(None)
        scope = BEARER_ROUTES.get((request.method, record.route_template or ""))
        grant = self.fake.oauth_grants.get(auth.removeprefix("Bearer ")) if scope else None
        live = grant is not None and grant.valid(self.fake.clock()) and scope in grant.scopes
        return Identity(grant) if live and auth.startswith("Bearer ") else None

    async def _respond(
        self, request: web.Request, handler: Any, record: RequestRecord
    ) -> web.StreamResponse:
        """Apply latency/faults, auth and rate limits, then run the route handler."""
        fake = self.fake
        delay, fault = fake.faults.take(request.method, record.path, record.route_template)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None and (injected := fault.response()) is not None:
            return injected
        if not record.path.startswith(NO_AUTH_PREFIXES):
            identity = self._identify(request, record)
            if identity is None:
                return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
            request[AUTH_KEY] = identity
        bot_token = request.headers.get("Authorization", "") == f"Bot {fake.token}"
        if (refused := fake.ratelimits.check_global(record.path, bot_token)) is not None:
            return refused
        limited, rl_headers = fake.ratelimits.check(
            record.route_template,
            f"{request.method} {record.route_template or record.path}",
            _snowflake_or_zero(request.match_info.get("guild_id")) or None,
        )
        if limited is not None:
            return limited
        try:
            response = await handler(request)
        except DiscordHTTPError as exc:
            response = json_response(exc.body, status=exc.status)
        except web.HTTPException as exc:
            fake.unhandled.append(record)
            message = f"{exc.status}: {exc.reason}"
            response = json_response({"message": message, "code": 0}, status=exc.status)
        response.headers.update(rl_headers)
        return response
