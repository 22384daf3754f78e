"""Validate requests against Discord's official OpenAPI spec (loaded and compiled once)."""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# A gzipped copy of ../shared/specs/discord-openapi.json ships with the tests so they run on a
# fresh machine; tests/unit/test_fake_discord.py checks it still equals the shared original.
VENDORED_SPEC = Path(__file__).with_name("discord-openapi.json.gz")
SHARED_SPEC = Path(__file__).resolve().parents[3].parent / "shared/specs/discord-openapi.json"
SPEC_PATH = Path(os.environ.get("DISCORD_OPENAPI_SPEC", VENDORED_SPEC))
_SPEC_URI = "urn:discord-openapi"
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "True": True, "False": False}

# Narrow, documented places where real Discord (and discord.py 2.7) disagree with the spec.
# Keyed by (METHOD, template); each entry loosens exactly one thing.
KNOWN_DEVIATIONS: dict[tuple[str, str], dict[str, Any]] = {
    # discord.py sends `delete_message_seconds` as a query parameter and no body; Discord
    # accepts both forms, the spec only documents the JSON body.
    ("PUT", "/guilds/{guild_id}/bans/{user_id}"): {
        "optional_body": True,
        "extra_query": {"delete_message_seconds"},
    },
    # Same for unban: discord.py sends no body; the spec marks an (empty) JSON body required.
    ("DELETE", "/guilds/{guild_id}/bans/{user_id}"): {"optional_body": True},
}


@dataclass(frozen=True)
class Violation:
    """One request that does not conform to the spec."""

    method: str
    path: str
    template: str | None
    error: str

    def __str__(self) -> str:
        """One line: METHOD path [template]: error."""
        return f"{self.method} {self.path} [{self.template}]: {self.error}"


@dataclass
class Operation:
    """A compiled (method, path template) from the spec."""

    method: str
    template: str
    regex: re.Pattern[str]
    literal_segments: int
    params: dict[tuple[str, str], tuple[dict[str, Any], str]] = field(default_factory=dict)
    body_pointer: dict[str, str] = field(default_factory=dict)
    body_required: bool = False


def _patched_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Return the spec with the one global exception applied.

    Discord documents snowflakes as strings, but its JSON API accepts integers too and
    discord.py sends integers (e.g. `recipient_id`, `target_user_id`). Accept both in
    bodies; path and query values are strings anyway, so they keep the string pattern.
    """
    spec = copy.copy(raw)
    spec["components"] = dict(raw["components"])
    schemas = dict(raw["components"]["schemas"])
    schemas["SnowflakeType"] = {
        "anyOf": [raw["components"]["schemas"]["SnowflakeType"], {"type": "integer", "minimum": 0}]
    }
    spec["components"]["schemas"] = schemas
    # `GET /applications/{id}/skus` (List SKUs) is in Discord's monetization docs and used by
    # discord.py (`HTTPClient.get_skus`) but missing from this spec: add it, parameters only.
    paths = dict(raw["paths"])
    paths.setdefault(
        "/applications/{application_id}/skus",
        {
            "parameters": raw["paths"]["/applications/{application_id}/entitlements"]["parameters"],
            "get": {"operationId": "list_skus", "responses": {"200": {"description": "SKUs"}}},
        },
    )
    spec["paths"] = paths
    return spec


def _pointer(*parts: str) -> str:
    """A URL-quoted JSON pointer fragment for spec path parts."""
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(urllib.parse.quote(p, safe="~") for p in escaped)


def _describe(error: jsonschema.ValidationError) -> str:
    """Dig into anyOf/oneOf failures: report the alternative that got deepest into the body."""

    def depth(err: jsonschema.ValidationError) -> int:
        """How deep into the instance the error (or its sub-errors) reached."""
        return max([len(err.absolute_path), *(depth(c) for c in err.context or ())])

    while error.context:
        error = max(error.context, key=depth)
    where = "/".join(str(p) for p in error.absolute_path) or "<root>"
    return f"body {where}: {error.message[:300]}"


class OpenAPIValidator:
    """Matches request paths to spec templates and validates path, query and JSON body."""

    def __init__(self, spec: dict[str, Any]) -> None:
        """Index every operation of the (patched) spec."""
        self.spec = _patched_spec(spec)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self.operations: dict[int, list[Operation]] = {}
        for template, item in self.spec["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = [
                    (p, ("paths", template, "parameters", str(i))) for i, p in enumerate(shared)
                ]
                params += [
                    (p, ("paths", template, method, "parameters", str(i)))
                    for i, p in enumerate(op.get("parameters", []))
                ]
                self._add(template, method.upper(), params, op)

    def _add(
        self,
        template: str,
        method: str,
        params: list[tuple[dict[str, Any], tuple[str, ...]]],
        op: dict[str, Any],
    ) -> None:
        """Compile one (template, method) into an Operation."""
        segments = template.strip("/").split("/")
        pattern = "/".join(
            "[^/]+" if s.startswith("{") else re.escape(s) for s in segments
        )  # one segment per template part
        oper = Operation(
            method=method,
            template=template,
            regex=re.compile(f"^/{pattern}$"),
            literal_segments=sum(not s.startswith("{") for s in segments),
            params={(p["in"], p["name"]): (p, _pointer(*ptr, "schema")) for p, ptr in params},
        )
        body = op.get("requestBody")
        if body:
            oper.body_required = bool(body.get("required"))
            path_ptr = ("paths", template, method.lower(), "requestBody", "content")
            for ctype in body.get("content", {}):
                oper.body_pointer[ctype] = _pointer(*path_ptr, ctype, "schema")
        self.operations.setdefault(len(segments), []).append(oper)

    def _validator(self, ref: str) -> jsonschema.protocols.Validator:
        """A cached Draft 2020-12 validator for a spec pointer."""
        validator = self._validators.get(ref)
        if validator is None:
            schema = {"$ref": _SPEC_URI + ref}
            validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
            self._validators[ref] = validator
        return validator

    def match(self, method: str, path: str) -> tuple[Operation | None, bool]:
        """Return (operation, path_known). The most literal template wins (`@me` over `{id}`)."""
        candidates = [
            op
            for op in self.operations.get(len(path.strip("/").split("/")), ())
            if op.regex.match(path)
        ]
        if not candidates:
            return None, False
        candidates.sort(key=lambda op: -op.literal_segments)
        for op in candidates:
            if op.method == method:
                return op, True
        return None, True

    def validate(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        content_type: str | None,
        body: Any,
        has_body: bool,
    ) -> tuple[str | None, list[str]]:
        """Validate one request; return (matched template, list of error strings)."""
        op, known = self.match(method, path)
        if op is None:
            return None, [
                f"{'method not allowed' if known else 'unknown path'} for {method} {path}"
            ]
        deviation = KNOWN_DEVIATIONS.get((method, op.template), {})
        errors = self._check_path(op, path) + self._check_query(op, query, deviation)
        if not has_body:
            if op.body_required and not deviation.get("optional_body"):
                errors.append("request body is required")
            return op.template, errors
        if not op.body_pointer:
            errors.append("operation takes no request body")
            return op.template, errors
        ref = op.body_pointer.get(content_type or "")
        if ref is None:
            errors.append(f"content type {content_type!r} not in {sorted(op.body_pointer)}")
            return op.template, errors
        error = jsonschema.exceptions.best_match(self._validator(ref).iter_errors(body))
        if error is not None:
            errors.append(_describe(error))
        return op.template, errors

    def _check_path(self, op: Operation, path: str) -> list[str]:
        """Validate path parameters (e.g. snowflake pattern)."""
        errors = []
        names = op.template.strip("/").split("/")
        for name, value in zip(names, path.strip("/").split("/"), strict=True):
            param = op.params.get(("path", name[1:-1])) if name.startswith("{") else None
            if param is not None:
                errors += self._check_value(f"path {name}", param[1], urllib.parse.unquote(value))
        return errors

    def _check_query(
        self, op: Operation, query: dict[str, str], deviation: dict[str, Any]
    ) -> list[str]:
        """Validate query parameters; unknown ones are violations too."""
        errors = []
        for name, value in query.items():
            param = op.params.get(("query", name))
            if param is None:
                if name not in deviation.get("extra_query", ()):
                    errors.append(f"unknown query parameter {name!r}")
                continue
            errors += self._check_value(f"query {name}", param[1], value)
        for (where, name), (param, _ptr) in op.params.items():
            if where == "query" and param.get("required") and name not in query:
                errors.append(f"missing required query parameter {name!r}")
        return errors

    def _resolve(self, ref: str) -> dict[str, Any]:
        """Follow `$ref`s from a spec pointer to the concrete schema."""
        resolver = self.registry.resolver(_SPEC_URI)
        schema = resolver.lookup(_SPEC_URI + ref).contents
        while isinstance(schema, dict) and "$ref" in schema:
            schema = resolver.lookup(_SPEC_URI + schema["$ref"]).contents
        return schema

    def _check_value(self, label: str, ref: str, raw: str) -> list[str]:
        """Coerce a URL string to the parameter schema's type, then validate it."""
        types = self._resolve(ref).get("type", "string")
        types = types if isinstance(types, list) else [types]
        value: Any = raw
        if "integer" in types or "number" in types:
            try:
                value = int(raw) if "integer" in types else float(raw)
            except ValueError:
                return [f"{label}: {raw!r} is not a number"]
        elif "boolean" in types:
            if raw not in _BOOLS:
                return [f"{label}: {raw!r} is not a boolean"]
            value = _BOOLS[raw]
        error = jsonschema.exceptions.best_match(self._validator(ref).iter_errors(value))
        return [] if error is None else [f"{label}: {error.message[:200]}"]


@cache
def get_validator(path: Path = SPEC_PATH) -> OpenAPIValidator:
    """Load and compile the spec once per process."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return OpenAPIValidator(json.load(fh))
