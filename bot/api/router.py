"""The integration API's router: declared routes (method, path, parameter and body models,
responses) become aiohttp routes with one error format, Bearer-key auth by scope, the per-key
rate limit, and the OpenAPI 3.1 document generated from the same declarations."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from bot.api.keys import ApiKeys, RateLimiter
from bot.api.schemas import ErrorResponse
from bot.errors import Conflict, Forbidden, InvalidInput, NotFound, ShopError, TooManyAttempts
from bot.store.api import ApiKey

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 256 * 1024
REF = "#/components/schemas/{model}"
_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
}
_DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key lacks the scope this route needs.",
    404: "No such thing (or route).",
    409: "Clashes with the current state.",
    413: "The body is larger than 256 KiB.",
    422: "A parameter or the body is invalid; `details` lists each problem.",
    429: "Too many requests with this key; wait `Retry-After` seconds.",
}


class ApiError(Exception):
    """An error answer: status, code, message, details."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _REASONS.get(status, "error")
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code or _REASONS.get(status, "error"), "message": message}}
    body["error"]["details"] = details
    return web.json_response(body, status=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Header:
    """A request header a route reads (documented as a parameter)."""

    name: str
    description: str
    required: bool = True
    max_length: int = 200


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated, validated request, as a route handler gets it."""

    key: ApiKey
    path: Any
    query: Any
    body: Any
    headers: Mapping[str, str]
    #: The caller's address (license validation is limited per client as well as per key).
    remote: str = ""


#: A handler answers (status, model) or (status, ready JSON text).
Handler = Callable[[Call], Awaitable[tuple[int, BaseModel | str]]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # below /api/v1, aiohttp's {name} syntax
    handler: Handler
    summary: str
    responses: dict[int, type[BaseModel]]
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    errors: tuple[int, ...] = ()  # further documented errors: 404, 409
    scope: str | None = None  # default: licenses for /licenses/*, read for GET, else write
    tag: str = "api"

    @property
    def needed_scope(self) -> str:
        if self.scope is not None:
            return self.scope
        if self.path.startswith("/licenses"):
            return "licenses"
        return "read" if self.method == "GET" else "write"

    def error_statuses(self) -> list[int]:
        found = {401, 403, 429, *self.errors}
        if self.path_model or self.query_model or self.body_model or self.headers:
            found.add(422)
        if self.path_model is not None:
            found.add(404)
        if self.body_model is not None:
            found |= {400, 413}
        return sorted(found)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _problems(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    return [
        {
            "in": where,
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _shop_error(exc: ShopError) -> ApiError:
    message = exc.user_message.replace("**", "").replace("`", "")
    if isinstance(exc, NotFound):
        return ApiError(404, message)
    if isinstance(exc, Conflict):
        return ApiError(409, message)
    if isinstance(exc, Forbidden):
        return ApiError(403, message)
    if isinstance(exc, TooManyAttempts):
        return ApiError(429, message)
    if isinstance(exc, InvalidInput):
        return ApiError(422, message)
    return ApiError(502, message, code="upstream")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every answer of /api/v1 that is not a success is `{"error": {...}}`."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.code, exc.details, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = {
            404: f"There is no route {request.path}.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: f"The body is larger than {MAX_BODY // 1024} KiB.",
        }.get(exc.status, exc.reason)
        return error_response(exc.status, message, headers=headers)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return error_response(500, "Something went wrong on our side; it was logged.")


class Api:
    """The route table of /api/v1 and what serves it."""

    def __init__(self, keys: ApiKeys, limiter: RateLimiter, *, version: str = "1.0.0") -> None:
        self.keys = keys
        self.limiter = limiter
        self.version = version
        self.routes: list[Route] = []

    def add(self, route: Route) -> None:
        self.routes.append(route)

    def app(self) -> web.Application:
        """The sub-application mounted at /api/v1."""
        app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
        document = self.openapi()
        text = json.dumps(document)

        async def openapi(_: web.Request) -> web.Response:
            return web.Response(text=text, content_type="application/json")

        app.router.add_get("/openapi.json", openapi)
        for route in self.routes:
            app.router.add_route(route.method, route.path, self._serve(route))
        return app

    def _serve(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            token = _bearer(request)
            if token is None:
                raise ApiError(
                    401,
                    "Send your API key as `Authorization: Bearer <key>`.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            key = await self.keys.authenticate(token)
            if key is None:
                raise ApiError(
                    401,
                    "That API key is unknown or revoked.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            wait = self.limiter.check(key.id)
            if wait is not None:
                raise ApiError(
                    429,
                    f"More than {self.limiter.per_minute} requests a minute with this key; "
                    f"try again in {wait} s.",
                    details={"retry_after": wait},
                    headers={"Retry-After": str(wait)},
                )
            if route.needed_scope not in key.scopes:
                raise ApiError(
                    403,
                    f"This key lacks the `{route.needed_scope}` scope "
                    "(`shopbot api-key create --scopes ...`).",
                    details={"needed_scope": route.needed_scope},
                )
            call = Call(
                key=key,
                path=_parse(route.path_model, dict(request.match_info), "path"),
                query=_parse(route.query_model, _query(request), "query"),
                body=await _body(route, request),
                headers=_headers(route, request),
                remote=request.remote or "",
            )
            try:
                status, answer = await route.handler(call)
            except ShopError as exc:
                raise _shop_error(exc) from None
            text = answer if isinstance(answer, str) else answer.model_dump_json()
            return web.Response(text=text, status=status, content_type="application/json")

        return serve

    # the document ----------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """OpenAPI 3.1: every route, its parameters, body and every response, with the
        schemas pydantic generates from the models."""
        pairs: list[tuple[type[BaseModel], Any]] = [(ErrorResponse, "serialization")]
        for route in self.routes:
            if route.body_model is not None:
                pairs.append((route.body_model, "validation"))
            pairs += [(model, "serialization") for model in route.responses.values()]
        refs, top = models_json_schema(list(dict.fromkeys(pairs)), ref_template=REF)
        error_ref = refs[(ErrorResponse, "serialization")]
        paths: dict[str, dict[str, Any]] = {
            f"{PREFIX}/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            }
        }
        for route in self.routes:
            operation: dict[str, Any] = {
                "operationId": _operation_id(route),
                "summary": route.summary,
                "tags": [route.tag],
                "description": f"Needs the `{route.needed_scope}` scope.",
                "security": [{"bearer": [route.needed_scope]}],
                "parameters": _parameters(route),
                "responses": {},
            }
            if route.body_model is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": refs[(route.body_model, "validation")]}
                    },
                }
            for status, model in route.responses.items():
                operation["responses"][str(status)] = {
                    "description": (model.__doc__ or model.__name__).strip().splitlines()[0],
                    "content": {"application/json": {"schema": refs[(model, "serialization")]}},
                }
            for status in route.error_statuses():
                answer: dict[str, Any] = {
                    "description": _DESCRIPTIONS.get(status, "Error."),
                    "content": {"application/json": {"schema": error_ref}},
                }
                if status == 429:
                    answer["headers"] = {
                        "Retry-After": {
                            "description": "Seconds until a request is allowed again.",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    }
                operation["responses"][str(status)] = answer
            operation["responses"]["default"] = {
                "description": "Any other error (e.g. 500), in the same format.",
                "content": {"application/json": {"schema": error_ref}},
            }
            paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "info": {
                "title": "shopbot integration API",
                "version": self.version,
                "description": "Products and their Discord actions, orders and deliveries, "
                "purchases made elsewhere, and members' entitlements. See docs/API.md.",
            },
            "paths": paths,
            "components": {
                "schemas": top.get("$defs", {}),
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key from `shopbot api-key create`.",
                    }
                },
            },
        }


def _operation_id(route: Route) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("/", "_")
    return f"{route.method.lower()}_{words}"


def _parameters(route: Route) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for where, model in (("path", route.path_model), ("query", route.query_model)):
        if model is None:
            continue
        schema = model.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            description = prop.pop("description", None)
            parameter: dict[str, Any] = {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "schema": prop,
            }
            if description:
                parameter["description"] = description
            found.append(parameter)
    for header in route.headers:
        found.append(
            {
                "name": header.name,
                "in": "header",
                "required": header.required,
                "description": header.description,
                "schema": {"type": "string", "minLength": 1, "maxLength": header.max_length},
            }
        )
    return found


def _query(request: web.Request) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in request.query.items():
        if name in values:
            raise ApiError(422, f"The query parameter {name} is given twice.")
        values[name] = value
    return values


def _parse(model: type[BaseModel] | None, values: dict[str, str], where: str) -> Any:
    if model is None:
        if values and where == "query":
            raise ApiError(422, "This route takes no query parameters.", details=sorted(values))
        return None
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(422, f"Invalid {where} parameters.", details=_problems(exc, where)) from None


async def _body(route: Route, request: web.Request) -> Any:
    if route.body_model is None:
        return None
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"The body is larger than {MAX_BODY // 1024} KiB.")
    raw = await request.read()  # 413 past client_max_size when chunked
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "The body must be JSON.", code="invalid_json") from None
    try:
        return route.body_model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "The body is invalid.", details=_problems(exc, "body")) from None


def _headers(route: Route, request: web.Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in route.headers:
        value = request.headers.get(header.name, "").strip()
        if not value and header.required:
            raise ApiError(422, f"The {header.name} header is required.", details=[header.name])
        if len(value) > header.max_length:
            raise ApiError(
                422, f"The {header.name} header can be at most {header.max_length} characters."
            )
        found[header.name] = value
    return found
