"""A property-based fuzz of /api/v1 (hypothesis over the served OpenAPI document): requests
drawn from each operation's parameter and body schemas, mixed with ids that exist, never get
a 5xx, and every answer matches the document."""

from __future__ import annotations

import asyncio
import json
import string
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_client import PREFIX, check_against, create_key
from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.shop import BUYER, Shop, open_shop

EXAMPLES_PER_OPERATION = 25
HEADER_TEXT = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)


@pytest_asyncio.fixture
async def unlimited_shop(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> AsyncIterator[Shop]:
    """A running shop whose API rate limit does not get in the fuzzer's way."""
    extra = "[api]\nrate_limit_per_minute = 100000\n"
    async with open_shop(tmp_path, fake_discord, fake_stripe, extra_config=extra) as running:
        yield running


def _fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


#: Any JSON value: what a careless or hostile client may send where a schema wants another.
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _strategy(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a JSON schema (the subset pydantic writes), sometimes any JSON instead."""
    return st.one_of(_valid(schema, components), ANY_JSON) if schema else ANY_JSON


def _valid(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: _valid(components["schemas"][name], components))
    if "anyOf" in schema:
        return st.one_of([_valid(option, components) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            _strategy(schema.get("items", {}), components),
            max_size=min(schema.get("maxItems", 4), 4),
        )
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {
                name: _strategy(sub, components)
                for name, sub in properties.items()
                if name in required
            },
            optional={
                name: _strategy(sub, components)
                for name, sub in properties.items()
                if name not in required
            },
        )
    return ANY_JSON


def _operation_strategy(
    document: dict[str, Any], template: str, operation: dict[str, Any], known: dict[str, list[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    components = document["components"]
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "header":
            drawn: st.SearchStrategy[Any] = HEADER_TEXT
        elif where == "path":  # a path segment is never empty
            drawn = _valid(parameter["schema"], components) | st.text(min_size=1, max_size=20)
        else:
            drawn = _strategy(parameter["schema"], components)
        if name in known:
            drawn = st.one_of(st.sampled_from(known[name]), drawn)
        if not parameter.get("required"):
            drawn = st.one_of(st.none(), drawn)
        parts[f"{where}:{name}"] = drawn
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        parts["body"] = _strategy(schema, components)
    return st.fixed_dictionaries(parts)


def _send_drawn(
    base: str, key: str, method: str, template: str, drawn: dict[str, Any]
) -> tuple[str, int, Any]:
    """Turn one drawn example into a request; return (url, status, JSON answer)."""

    def named(where: str) -> dict[str, Any]:
        prefix = f"{where}:"
        return {
            k.removeprefix(prefix): v
            for k, v in drawn.items()
            if k.startswith(prefix) and v is not None
        }

    path = {name: urllib.parse.quote(str(v), safe="") for name, v in named("path").items()}
    query = {name: v if isinstance(v, str) else json.dumps(v) for name, v in named("query").items()}
    headers = {"Authorization": f"Bearer {key}", **named("header")}
    body = None
    if "body" in drawn:
        body = json.dumps(drawn["body"]).encode()
        headers["Content-Type"] = "application/json"
    url = base + PREFIX + template.format(**path)
    if query:
        url += "?" + urllib.parse.urlencode(query)
    status, answer = _send(method.upper(), url, headers, body)
    return url, status, answer


def fuzz(base: str, key: str, known: dict[str, list[Any]]) -> list[tuple[str, str, int]]:
    """Run the fuzz (in a thread: the fakes answer the bot on the test's event loop)."""
    document = _fetch(f"{base}{PREFIX}/openapi.json")
    seen: list[tuple[str, str, int]] = []

    def fuzz_operation(method: str, template: str, operation: dict[str, Any]) -> None:
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(_operation_strategy(document, template, operation, known))
        def one_request(drawn: dict[str, Any]) -> None:
            url, status, answer = _send_drawn(base, key, method, template, drawn)
            assert status < 500, (method, url, drawn, status, answer)
            check_against(document, method, template, status, answer)
            seen.append((method, template, status))

        one_request()

    operations = [
        (method, full.removeprefix(PREFIX), operation)
        for full, methods in document["paths"].items()
        for method, operation in methods.items()
        if full != f"{PREFIX}/openapi.json"
    ]
    # DELETE last: the known product stays for the others to reach real answers.
    for method, template, operation in sorted(operations, key=lambda op: op[0] == "delete"):
        fuzz_operation(method, template, operation)
    return seen


async def test_api_fuzz_finds_no_5xx(unlimited_shop: Shop) -> None:
    """Every operation, fed values from its own schemas (and ids that exist), answers
    without a 5xx and as the document says."""
    shop = unlimited_shop
    key = await create_key(shop.bot, "fuzz", "read,write,licenses")
    await shop.add_product()
    product_id = shop.product_id("VIP")
    await shop.pay(await shop.buy(BUYER))
    await shop.wait(lambda: shop.has_role(BUYER), "the role of the paid order")
    order_id = int(shop.bot.scalar("SELECT id FROM orders"))
    job_id = int(shop.bot.scalar("SELECT MIN(id) FROM delivery_jobs"))
    known: dict[str, list[Any]] = {
        "guild_id": [str(shop.guild_id)],
        "user_id": [str(BUYER)],
        "id": [product_id, order_id, job_id],
    }
    seen = await asyncio.wait_for(asyncio.to_thread(fuzz, shop.bot.url, key, known), 120)
    operations = {(method, template) for method, template, _ in seen}
    assert len(operations) >= 15, operations
    assert any(status < 300 for _, _, status in seen)  # the fuzz reached real answers too
