"""A client of the running bot's /api/v1 that checks every response against the OpenAPI
document the bot serves: a status the document does not list for that operation, or a body
that does not match its schema, fails the test."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jsonschema

from tests.harness import BotProcess, shopbot_command

PREFIX = "/api/v1"


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


def check_against(
    document: dict[str, Any], method: str, template: str, status: int, body: Any
) -> None:
    """Fail unless the document lists `status` (or a default) for this operation and the
    body matches the schema of that response."""
    operation = document["paths"][PREFIX + template][method.lower()]
    responses = operation["responses"]
    spec = responses.get(str(status)) or responses.get("default")
    assert spec is not None, f"{method} {template} answered {status}, not in the document"
    if status < 400:
        assert str(status) in responses, f"{method} {template}: {status} is not documented"
    schema = spec["content"]["application/json"]["schema"]
    jsonschema.validate(
        body,
        {**schema, "components": document["components"]},
        cls=jsonschema.Draft202012Validator,
    )


class ApiClient:
    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession()
        self.document: dict[str, Any] = {}
        self.seen: list[tuple[str, str, int]] = []

    async def load_document(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}{PREFIX}/openapi.json") as response:
            assert response.status == 200
            self.document = await response.json()
        return self.document

    async def call(
        self,
        method: str,
        template: str,
        key: str | None,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request, by operation (`template` as in the document); checked against it."""
        url = self.base + PREFIX + template.format(**(path or {}))
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, url, params=query, data=data, headers=sent
        ) as response:
            assert response.content_type == "application/json", response.content_type
            body = await response.json()
            answer = Answer(response.status, body, response.headers)
        check_against(self.document, method, template, answer.status, body)
        if answer.status == 429:
            assert int(answer.headers["Retry-After"]) >= 1
        self.seen.append((method, template, answer.status))
        return answer

    async def close(self) -> None:
        await self.session.close()


async def create_key(bot: BotProcess, name: str, scopes: str) -> str:
    """`shopbot api-key create` against the bot's database; the key it prints once."""
    result = await asyncio.to_thread(
        subprocess.run,
        [*shopbot_command(), "--config", str(bot.config_path), "api-key", "create",
         "--name", name, "--scopes", scopes],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("key: ")]
    assert len(lines) == 1, result.stdout
    return lines[0].removeprefix("key: ")
