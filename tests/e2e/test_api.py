"""The integration API through the real `shopbot run` (SPEC §5c): auth and scopes, the rate
limit, external orders, actions, revocation; every response is checked against the served
OpenAPI document (tests/api_client.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.api_client import ApiClient, create_key
from tests.e2e.test_cli import run_cli
from tests.shop import BUYER, FRIEND, Shop, text_of


@pytest_asyncio.fixture
async def client(shop: Shop) -> AsyncIterator[ApiClient]:
    api = ApiClient(shop.bot.url)
    await api.load_document()
    try:
        yield api
    finally:
        await api.close()


async def test_api_read_key_cannot_write_no_key_is_401_and_the_61st_request_is_429(
    shop: Shop, client: ApiClient
) -> None:
    """No key or a bad key: 401; a `read` key cannot write: 403; the 61st request of a key
    within a minute: 429 with Retry-After. Every error has the one error format."""
    reader = await create_key(shop.bot, "reader", "read")
    guild = {"guild_id": shop.guild_id}
    missing = await client.call("GET", "/guilds/{guild_id}/products", None, path=guild)
    assert missing.status == 401 and missing.body["error"]["code"] == "unauthorized"
    bad = await client.call("GET", "/orders", "sbk_" + "x" * 43)
    assert bad.status == 401
    body = {"name": "Gold", "price_amount": 500}
    refused = await client.call(
        "POST", "/guilds/{guild_id}/products", reader, path=guild, json_body=body
    )
    assert refused.status == 403 and refused.body["error"]["details"]["needed_scope"] == "write"
    assert shop.bot.scalar("SELECT COUNT(*) FROM products") == 0
    roles = await client.call("GET", "/guilds/{guild_id}/roles", reader, path=guild)
    assert roles.status == 200
    by_name = {role["name"]: role for role in roles.body["data"]}
    assert by_name["VIP"]["assignable"] and not by_name["Mods"]["assignable"]
    channels = await client.call("GET", "/guilds/{guild_id}/channels", reader, path=guild)
    assert [c["name"] for c in channels.body["data"]] == ["general"]
    answers = [
        (await client.call("GET", "/orders", reader, query={"limit": 1})).status
        for _ in range(60 - 3)  # three requests of this key came before
    ]
    assert set(answers) == {200}
    limited = await client.call("GET", "/orders", reader)
    assert limited.status == 429 and limited.body["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    other = await create_key(shop.bot, "other", "read")
    assert (await client.call("GET", "/orders", other)).status == 200  # per key


async def test_api_errors_share_one_format(shop: Shop, client: ApiClient) -> None:
    """Bad JSON, an invalid body, an unknown route, a wrong method, an oversized body, a
    missing Idempotency-Key: each answers `{"error": {code, message, details}}`."""
    writer = await create_key(shop.bot, "writer", "read,write")
    guild = {"guild_id": shop.guild_id}
    not_json = await client.call(
        "POST", "/guilds/{guild_id}/products", writer, path=guild, data=b"{nope"
    )
    assert not_json.status == 400 and not_json.body["error"]["code"] == "invalid_json"
    invalid = await client.call(
        "POST", "/guilds/{guild_id}/products", writer, path=guild, json_body={"name": ""}
    )
    assert invalid.status == 422
    fields = {problem["field"] for problem in invalid.body["error"]["details"]}
    assert {"name", "price_amount"} <= fields
    huge = await client.call(
        "POST", "/guilds/{guild_id}/products", writer, path=guild, data=b"[" + b" " * 300_000
    )
    assert huge.status == 413
    no_key = await client.call(
        "POST",
        "/orders",
        writer,
        json_body={"guild_id": str(shop.guild_id), "product_id": 1, "reference": "r"},
    )
    assert no_key.status == 422 and "Idempotency-Key" in no_key.body["error"]["message"]
    async with client.session.get(f"{shop.bot.url}/api/v1/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with client.session.put(f"{shop.bot.url}/api/v1/orders") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_api_external_order_is_delivered_once_and_claim_code_claims(
    shop: Shop, client: ApiClient
) -> None:
    """A product made through the API; POST /orders twice with one Idempotency-Key → one
    order, one role grant; without user_id → a claim code → /claim → the role. The order
    shows its deliveries with each attempt; revoke takes the role back."""
    writer = await create_key(shop.bot, "site", "read,write")
    guild = {"guild_id": shop.guild_id}
    made = await client.call(
        "POST",
        "/guilds/{guild_id}/products",
        writer,
        path=guild,
        json_body={"name": "VIP", "price_amount": 499, "role_id": str(shop.vip_role)},
    )
    assert made.status == 201, made.body
    product_id = made.body["id"]
    order = {"guild_id": str(shop.guild_id), "product_id": product_id, "user_id": str(BUYER)}
    first, second = [
        await client.call(
            "POST",
            "/orders",
            writer,
            json_body={**order, "reference": "web-1"},
            headers={"Idempotency-Key": "purchase-1"},
        )
        for _ in range(2)
    ]
    assert first.status == second.status == 201 and first.body == second.body
    clash = await client.call(
        "POST",
        "/orders",
        writer,
        json_body={**order, "reference": "web-2"},
        headers={"Idempotency-Key": "purchase-1"},
    )
    assert clash.status == 409
    await shop.wait(lambda: shop.has_role(BUYER), "role from the API order")
    assert shop.bot.scalar("SELECT COUNT(*) FROM orders") == 1
    assert len(shop.role_adds(BUYER)) == 1
    order_id = first.body["id"]

    async def grant_done() -> bool:
        detail = await client.call("GET", "/orders/{id}", writer, path={"id": order_id})
        grants = [d for d in detail.body["deliveries"] if d["kind"] == "grant_role"]
        return bool(grants) and grants[0]["status"] == "completed" and bool(grants[0]["history"])

    assert await grant_done()
    held = await client.call(
        "GET",
        "/guilds/{guild_id}/members/{user_id}/entitlements",
        writer,
        path={"guild_id": shop.guild_id, "user_id": BUYER},
    )
    assert [(e["order_id"], e["status"]) for e in held.body["data"]] == [(order_id, "active")]
    listed = await client.call("GET", "/orders", writer, query={"user_id": str(BUYER)})
    assert [o["reference"] for o in listed.body["data"]] == ["web-1"]

    unclaimed = await client.call(
        "POST",
        "/orders",
        writer,
        json_body={"guild_id": str(shop.guild_id), "product_id": product_id, "reference": "w2"},
        headers={"Idempotency-Key": "purchase-2"},
    )
    code = unclaimed.body["claim_code"]
    assert unclaimed.status == 201 and code and unclaimed.body["user_id"] is None
    reply = await shop.command(FRIEND, "claim", {"code": code})
    assert "yours" in text_of(reply), text_of(reply)
    await shop.wait(lambda: shop.has_role(FRIEND), "role after /claim of the API order")

    revoked = await client.call("POST", "/orders/{id}/revoke", writer, path={"id": order_id})
    assert revoked.status == 200 and revoked.body["entitlement"]["status"] == "revoked"
    await shop.wait(lambda: not shop.has_role(BUYER), "role taken back after revoke")


async def test_api_put_actions_with_a_role_above_the_bot_changes_nothing(
    shop: Shop, client: ApiClient
) -> None:
    """PUT …/actions with one item naming a role above the bot's: 422, the list unchanged;
    a good list replaces it and the product's next purchase runs it."""
    writer = await create_key(shop.bot, "site", "read,write")
    await shop.add_product()
    product = {"id": shop.product_id("VIP")}
    before = await client.call("GET", "/products/{id}/actions", writer, path=product)
    assert [a["role_id"] for a in before.body["data"]] == [str(shop.vip_role)]
    message = {"action_type": "send_message", "execution_stage": "on_purchase", "message": "yo"}
    high = {
        "action_type": "grant_role",
        "execution_stage": "on_purchase",
        "role_id": str(shop.high_role),
    }
    refused = await client.call(
        "PUT", "/products/{id}/actions", writer, path=product, json_body=[message, high]
    )
    assert refused.status == 422 and "Action 2" in refused.body["error"]["message"]
    after = await client.call("GET", "/products/{id}/actions", writer, path=product)
    assert after.body == before.body
    replaced = await client.call(
        "PUT", "/products/{id}/actions", writer, path=product, json_body=[message]
    )
    assert replaced.status == 200 and len(replaced.body["data"]) == 1
    await shop.pay(await shop.buy(BUYER))
    await shop.wait(
        lambda: any("yo" in text_of(dm[1]) for dm in shop.dms_to(BUYER)), "the new action's message"
    )
    assert not shop.has_role(BUYER)


async def test_api_key_cli_lists_prefixes_and_revokes(shop: Shop, client: ApiClient) -> None:
    """`api-key list` shows the prefix and scopes, never the key; `api-key revoke` makes the
    key answer 401; a bad scope or id is one clear line and a non-zero exit."""
    key = await create_key(shop.bot, "game server", "read")
    assert (await client.call("GET", "/orders", key)).status == 200
    config = ["--config", str(shop.bot.config_path)]
    listed = await run_cli(*config, "api-key", "list")
    assert listed.returncode == 0 and key[:12] in listed.stdout and key not in listed.stdout
    assert "game server" in listed.stdout and "read" in listed.stdout
    key_id = listed.stdout.split()[0]
    revoked = await run_cli(*config, "api-key", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert (await client.call("GET", "/orders", key)).status == 401
    again = await run_cli(*config, "api-key", "revoke", key_id)
    assert again.returncode != 0 and "no live API key" in again.stderr
    bad = await run_cli(*config, "api-key", "create", "--name", "x", "--scopes", "admin")
    assert bad.returncode != 0 and "admin" in bad.stderr and "Traceback" not in bad.stderr


async def test_api_licenses_validate_bind_reset_and_webhook_endpoints(
    shop: Shop, client: ApiClient
) -> None:
    """/licenses/* needs the `licenses` scope; a bought key binds its first hwid, refuses a
    second (device_limit) until reset; an unknown key answers `unknown`. Webhook endpoints
    are created (secret shown once), listed without it, their log read, and deleted."""
    await shop.add_product("Game", "15", role=None)
    await shop.admin("shop license add", {"product": "Game", "keys": "KEY-API-1"})
    await shop.admin("shop action add", {"product": "Game", "type": "deliver_license",
                                         "stage": "on_purchase"})  # fmt: skip
    await shop.pay(await shop.buy(BUYER, "Game"))
    await shop.wait(lambda: any("KEY-API-1" in str(m) for m in shop.dms_to(BUYER)), "key DM")
    reader = await create_key(shop.bot, "reader", "read,write")
    licenser = await create_key(shop.bot, "game-server", "licenses")
    body = {"key": "KEY-API-1", "hwid": "machine-a"}
    refused = await client.call("POST", "/licenses/validate", reader, json_body=body)
    assert refused.status == 403 and refused.body["error"]["details"]["needed_scope"] == "licenses"
    first = await client.call("POST", "/licenses/validate", licenser, json_body=body)
    assert first.status == 200 and first.body["valid"] and first.body["status"] == "active"
    assert first.body["user_id"] == str(BUYER) and first.body["expires_at"] is None
    again = await client.call("POST", "/licenses/validate", licenser, json_body=body)
    assert again.body["status"] == "active"
    other = {"key": "KEY-API-1", "hwid": "machine-b"}
    limited = await client.call("POST", "/licenses/validate", licenser, json_body=other)
    assert limited.body == {**limited.body, "valid": False, "status": "device_limit"}
    unknown = await client.call(
        "POST", "/licenses/validate", licenser, json_body={"key": "KEY-NOPE"}
    )
    assert unknown.status == 200 and unknown.body["status"] == "unknown"
    assert unknown.body["product_id"] is None
    reset = await client.call("POST", "/licenses/{key}/reset", licenser, path={"key": "KEY-API-1"})
    assert reset.status == 200 and reset.body["reset"] is True
    moved = await client.call("POST", "/licenses/validate", licenser, json_body=other)
    assert moved.body["status"] == "active"
    missing = await client.call("POST", "/licenses/{key}/reset", licenser, path={"key": "NOPE"})
    assert missing.status == 404

    bad = await client.call(
        "POST", "/webhooks", reader, json_body={"url": "ftp://x", "events": ["order.paid"]}
    )
    assert bad.status == 422 and shop.bot.scalar("SELECT COUNT(*) FROM webhook_endpoints") == 0
    made = await client.call(
        "POST", "/webhooks", reader,
        json_body={"url": "http://127.0.0.1:9/hook", "events": ["order.paid", "access.ended"]},
    )  # fmt: skip
    assert made.status == 201 and made.body["secret"].startswith("whsec_")
    listed = await client.call("GET", "/webhooks", reader)
    assert [e["id"] for e in listed.body["data"]] == [made.body["id"]]
    assert "secret" not in listed.body["data"][0]
    log = await client.call(
        "GET", "/webhooks/{id}/deliveries", reader, path={"id": made.body["id"]}
    )
    assert log.status == 200 and log.body["data"] == []
    gone = await client.call("DELETE", "/webhooks/{id}", reader, path={"id": made.body["id"]})
    assert gone.status == 200 and gone.body["deleted"] is True
    again_gone = await client.call("DELETE", "/webhooks/{id}", reader, path={"id": made.body["id"]})
    assert again_gone.status == 404
