"""The integration API's service logic (bot/api/service.py, bot/api/keys.py) with the World:
idempotent external orders, claim codes, PUT actions all-or-nothing, revoke, retry, keys and
the rate limit."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.api import schemas as s
from bot.api.keys import ApiKeys, RateLimiter, parse_scopes
from bot.api.service import ApiService
from bot.errors import Conflict, InvalidInput, NotFound
from bot.store.api import ApiKey
from tests.unit.world import (
    BUYER,
    CHANNEL,
    GUILD,
    HIGH_ROLE,
    OTHER,
    OTHER_ROLE,
    ROLE,
    World,
    add_product,
    buy,
)


def service(world: World) -> ApiService:
    services = world.services
    return ApiService(
        world.store,
        world.settings,
        services.shop,
        services.actions,
        services.domain.fulfilment,
        services.domain.access,
        world.discord,
    )


async def a_key(world: World, scopes: str = "read,write") -> ApiKey:
    record, _ = await ApiKeys(world.store, world.clock).create("site", parse_scopes(scopes))
    return record


def order_body(product_id: int, user: int | None = BUYER, ref: str = "web-1") -> s.OrderCreate:
    return s.OrderCreate.model_validate(
        {"guild_id": str(GUILD), "product_id": product_id, "user_id": user, "reference": ref}
    )


async def test_api_order_twice_with_one_idempotency_key_is_one_order_and_one_grant(
    world: World,
) -> None:
    """POST /orders twice with one Idempotency-Key → the same answer, one order, one role
    grant; the same key with another body is a Conflict and changes nothing."""
    api, key = service(world), await a_key(world)
    product = await add_product(world, "VIP")
    first = await api.create_order(key, "purchase-77", order_body(product))
    again = await api.create_order(key, "purchase-77", order_body(product))
    assert first == again and first[0] == 201
    body = json.loads(first[1])
    assert body["status"] == "paid" and body["source"] == "api" and body["reference"] == "web-1"
    assert body["user_id"] == str(BUYER) and body["claim_code"] is None
    with pytest.raises(Conflict, match="different request body"):
        await api.create_order(key, "purchase-77", order_body(product, ref="web-2"))
    await world.run_jobs()
    assert world.rows("SELECT COUNT(*), MIN(source) FROM orders") == [(1, "api")]
    assert world.discord.calls.count(("add", BUYER, ROLE)) == 1
    detail = await api.order(body["id"])
    grant = next(d for d in detail.deliveries if d.kind == "grant_role")
    assert grant.status == "completed" and grant.history[0].outcome == "completed"
    assert detail.entitlement is not None and detail.entitlement.status == "active"


async def test_api_order_without_user_gives_a_claim_code_that_claim_attaches(
    world: World,
) -> None:
    """An external order without user_id answers a claim code; /claim with it gives the role."""
    api, key = service(world), await a_key(world)
    product = await add_product(world, "VIP")
    status, text = await api.create_order(key, "k1", order_body(product, user=None))
    body = json.loads(text)
    assert status == 201 and body["user_id"] is None and body["claim_code"]
    await world.run_jobs()
    assert ("add", OTHER, ROLE) not in world.discord.calls
    await world.members.claim(GUILD, OTHER, body["claim_code"])
    await world.run_jobs()
    assert ROLE in world.discord.roles[OTHER]


async def test_api_order_refuses_what_cannot_be_sold(world: World) -> None:
    """Another guild's product, an archived one, a sold-out one: refused, nothing written."""
    api, key = service(world), await a_key(world)
    product = await add_product(world, "VIP", stock=0)
    with pytest.raises(Conflict, match="sold out"):
        await api.create_order(key, "k1", order_body(product))
    wrong_guild = order_body(product).model_copy(update={"guild_id": GUILD + 1})
    with pytest.raises(NotFound):
        await api.create_order(key, "k2", wrong_guild)
    assert world.rows("SELECT COUNT(*) FROM orders") == [(0,)]
    assert world.rows("SELECT COUNT(*) FROM api_idempotency") == [(0,)]


async def test_put_actions_with_one_bad_item_changes_nothing(world: World) -> None:
    """PUT …/actions with one item the bot cannot carry out (a role above it, @everyone, a
    grant_role without a role) refuses the whole list; a good list replaces it and the
    product's next purchase runs the new list."""
    api = service(world)
    product = await add_product(world, "VIP")
    before = await api.product_actions(product)

    def put(*items: dict[str, object]) -> s.ActionsPut:
        return s.ActionsPut.model_validate(list(items))

    good = {"action_type": "send_message", "execution_stage": "on_purchase", "message": "hi!"}
    for bad, why in (
        ({"action_type": "grant_role", "execution_stage": "on_purchase", "role_id": HIGH_ROLE},
         "highest role"),
        ({"action_type": "grant_role", "execution_stage": "on_purchase", "role_id": GUILD},
         "everyone"),
        ({"action_type": "grant_role", "execution_stage": "on_purchase"}, "needs a"),
        ({"action_type": "grant_role", "execution_stage": "on_refund", "role_id": OTHER_ROLE},
         "only runs"),
    ):  # fmt: skip
        with pytest.raises(InvalidInput, match=why):
            await api.replace_actions(product, put(good, bad))
        assert await api.product_actions(product) == before
    new = await api.replace_actions(
        product,
        put(
            {
                "action_type": "grant_role",
                "execution_stage": "on_purchase",
                "role_id": str(OTHER_ROLE),
                "revocation_stages": ["on_refund"],
            },
            good,
            {
                "action_type": "create_invite",
                "execution_stage": "on_purchase",
                "channel_id": CHANNEL,
            },
        ),
    )
    assert [a.action_type for a in new.data] == ["grant_role", "send_message", "create_invite"]
    assert new.data[0].role_id == str(OTHER_ROLE) and new.data[0].revocation_stages == ["on_refund"]
    assert await api.product_actions(product) == new
    await buy(world, "VIP")
    await world.run_jobs()
    assert OTHER_ROLE in world.discord.roles[BUYER] and ROLE not in world.discord.roles[BUYER]
    assert any("hi!" in text for user, text in world.discord.dms if user == BUYER)


async def test_api_revoke_ends_access_by_the_revocation_rules(world: World) -> None:
    """POST /orders/{id}/revoke ends the entitlement and takes back the role the bot gave;
    a second revoke changes nothing; an unclaimed order has no access to end."""
    api, key = service(world), await a_key(world)
    product = await add_product(world, "VIP")
    _, text = await api.create_order(key, "k1", order_body(product))
    order_id = json.loads(text)["id"]
    await world.run_jobs()
    assert ROLE in world.discord.roles[BUYER]
    detail = await api.revoke_order(order_id)
    assert detail.entitlement is not None and detail.entitlement.status == "revoked"
    await world.run_jobs()
    assert ROLE not in world.discord.roles[BUYER]
    again = await api.revoke_order(order_id)
    assert again.entitlement == detail.entitlement
    _, unclaimed = await api.create_order(key, "k2", order_body(product, user=None))
    with pytest.raises(Conflict, match="claim code"):
        await api.revoke_order(json.loads(unclaimed)["id"])
    with pytest.raises(NotFound):
        await api.revoke_order(10_000)


async def test_api_retry_requeues_only_a_failed_delivery(world: World) -> None:
    """A delivery that failed (Missing Permissions) is queued again; a completed one is not."""
    api, key = service(world), await a_key(world)
    product = await add_product(world, "VIP")
    world.discord.refuse.add(BUYER)
    _, text = await api.create_order(key, "k1", order_body(product))
    await world.run_jobs()
    detail = await api.order(json.loads(text)["id"])
    grant = next(d for d in detail.deliveries if d.kind == "grant_role")
    assert grant.status == "failed" and grant.history[-1].error
    world.discord.refuse.clear()
    retried = await api.retry_delivery(grant.id)
    assert retried.status == "pending"
    await world.run_jobs()
    assert ROLE in world.discord.roles[BUYER]
    with pytest.raises(Conflict, match="completed"):
        await api.retry_delivery(grant.id)


async def test_api_keys_are_kept_as_hashes_and_revocable(world: World) -> None:
    """The key is shown once and only its hash is stored; a revoked key no longer works."""
    keys = ApiKeys(world.store, world.clock)
    record, key = await keys.create("site", ["read"])
    stored = world.rows("SELECT prefix, key_hash FROM api_keys")
    assert stored == [(key[:12], hashlib.sha256(key.encode()).hexdigest())]
    found = await keys.authenticate(key)
    assert found is not None and found.id == record.id and found.scopes == {"read"}
    assert (await keys.list())[0].last_used_at == world.clock.now()
    assert await keys.authenticate(key + "x") is None
    await keys.revoke(record.id)
    assert await keys.authenticate(key) is None
    with pytest.raises(NotFound):
        await keys.revoke(record.id)
    with pytest.raises(InvalidInput, match="admin"):
        parse_scopes("read,admin")


async def test_api_rate_limit_is_per_key_per_minute(world: World) -> None:
    """The 61st request of a key within a minute waits (seconds given); other keys do not."""
    limiter = RateLimiter(60, world.clock)
    assert all(limiter.check(1) is None for _ in range(60))
    world.clock.advance(seconds=20)
    assert limiter.check(1) == 40
    assert limiter.check(2) is None
    world.clock.advance(seconds=40)
    assert limiter.check(1) is None
