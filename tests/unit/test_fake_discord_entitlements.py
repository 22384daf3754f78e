"""The fake Discord's monetization surface (tests/fakes/discord/entitlements.py): SKUs,
listing with filters and paging, test entitlements and their error codes, consume, gateway
events to shard 0 only, and `entitlements` in interaction payloads."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.entitlements import CONSUMABLE, TEST_MODE_PURCHASE
from tests.fakes.discord.fixtures import fake_discord_fixture  # noqa: F401 - "fake_discord"
from tests.fakes.discord.gateway import Session

USER = 2002


@pytest_asyncio.fixture
async def rest(fake_discord: FakeDiscord) -> AsyncIterator[Any]:
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    app = f"{fake_discord.api_base}/applications/{fake_discord.application_id}"
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.request(method, app + path, **kwargs) as response:
                body = None if response.status == 204 else await response.json()
                return response.status, body

        yield call


async def test_fake_lists_skus_and_pages_entitlements(fake_discord: FakeDiscord, rest: Any) -> None:
    """SKUs as the portal made them; entitlements filtered by user and SKU, deleted ones only
    with exclude_deleted=false, paged ascending after `after` and below `before`."""
    sub = fake_discord.add_sku("VIP", 5)
    other = fake_discord.add_sku("Candy", CONSUMABLE)
    status, skus = await rest("GET", "/skus")
    assert status == 200 and [s["name"] for s in skus] == ["VIP", "Candy"]
    made = [fake_discord.grant_entitlement(sub["id"], user_id=USER + n) for n in range(5)]
    fake_discord.grant_entitlement(other["id"], user_id=USER)
    fake_discord.refund_entitlement(made[0]["id"])
    _, live = await rest("GET", "/entitlements", params={"sku_ids": sub["id"]})
    assert [e["id"] for e in live] == [e["id"] for e in made[1:]]
    params = {"sku_ids": sub["id"], "exclude_deleted": "false", "limit": "2"}
    _, first = await rest("GET", "/entitlements", params=params)
    _, second = await rest("GET", "/entitlements", params={**params, "after": first[-1]["id"]})
    assert [e["id"] for e in first + second] == [e["id"] for e in made[:4]]
    assert first[0]["deleted"] is True
    _, below = await rest("GET", "/entitlements", params={**params, "before": made[3]["id"]})
    assert [e["id"] for e in below] == [made[2]["id"], made[1]["id"]]
    _, mine = await rest("GET", "/entitlements", params={"user_id": str(USER)})
    assert [e["sku_id"] for e in mine] == [other["id"]]
    status, body = await rest("GET", "/entitlements", params={"limit": "101"})
    assert status == 400 and body["code"] == 50035
    assert ["limit: 101" in v.error for v in fake_discord.violations] == [True]
    fake_discord.violations.clear()  # that one was meant


async def test_fake_test_entitlements_and_their_errors(
    fake_discord: FakeDiscord, rest: Any
) -> None:
    """POST makes a test entitlement (type 4, no dates); DELETE only a live test one; Unknown
    SKU 10046, Unknown Entitlement 10029, a bad owner_type 50035."""
    guild = fake_discord.add_guild(dispatch=False)
    sku = fake_discord.add_sku("Server", 5, guild=True)
    body = {"sku_id": sku["id"], "owner_id": str(guild.id), "owner_type": 1}
    status, made = await rest("POST", "/entitlements", json=body)
    assert (
        status == 200 and made["type"] == TEST_MODE_PURCHASE and made["guild_id"] == str(guild.id)
    )
    assert made["starts_at"] is None and made["ends_at"] is None
    status, err = await rest("POST", "/entitlements", json={**body, "sku_id": "42"})
    assert (status, err["code"]) == (404, 10046)
    status, err = await rest("POST", "/entitlements", json={**body, "owner_type": 3})
    assert (status, err["code"]) == (400, 50035)
    assert ["owner_type" in v.error for v in fake_discord.violations] == [True]
    fake_discord.violations.clear()  # that one was meant
    assert (await rest("DELETE", f"/entitlements/{made['id']}"))[0] == 204
    status, err = await rest("DELETE", f"/entitlements/{made['id']}")
    assert (status, err["code"]) == (404, 10029)
    real = fake_discord.grant_entitlement(sku["id"], guild_id=guild.id)
    status, err = await rest("DELETE", f"/entitlements/{real['id']}")
    assert (status, err["code"]) == (404, 10029)
    status, err = await rest("POST", f"/entitlements/{real['id']}/consume")
    assert status == 400 and fake_discord.consumes == []


async def test_fake_consume_and_shard_zero(fake_discord: FakeDiscord, rest: Any) -> None:
    """Consume marks a consumable's entitlement; entitlement events reach shard 0 only; an
    interaction carries the member's and the server's live entitlements."""
    sku = fake_discord.add_sku("Candy", CONSUMABLE)
    bought = fake_discord.grant_entitlement(sku["id"], user_id=USER)
    assert (await rest("POST", f"/entitlements/{bought['id']}/consume"))[0] == 204
    assert fake_discord.consumes == [int(bought["id"])] and bought["consumed"] is True
    fake_discord.gateway.session = Session("s1", 0, [1, 2])
    assert fake_discord.dispatch_shard0("ENTITLEMENT_CREATE", bought) is None
    fake_discord.gateway.session = Session("s0", 0, [0, 2])
    assert fake_discord.dispatch_shard0("ENTITLEMENT_CREATE", bought) == 1
    guild = fake_discord.add_guild(dispatch=False)
    sub = fake_discord.add_sku("Server", 5, guild=True)
    held = fake_discord.grant_entitlement(sub["id"], guild_id=guild.id)
    gone = fake_discord.grant_entitlement(
        sub["id"], user_id=USER, ends_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    live = {e["id"] for e in fake_discord.active_entitlements(USER, guild.id)}
    assert live == {bought["id"], held["id"]} and gone["id"] not in live


@pytest.mark.parametrize("owner", ["user", "guild"])
async def test_fake_grant_needs_one_owner(fake_discord: FakeDiscord, owner: str) -> None:
    """A purchase is owned by a user or a guild, not both, not neither."""
    sku = fake_discord.add_sku("VIP")
    with pytest.raises(ValueError, match="user or a guild"):
        if owner == "user":
            fake_discord.grant_entitlement(sku["id"], user_id=1, guild_id=2)
        else:
            fake_discord.grant_entitlement(sku["id"])
