"""Discord SKUs with the real store and services (bot/skus.py): entitlement reports become
`sku` orders once, in any order and any number of times; ends, refunds, consumables, server
entitlements, reconciliation with Discord's list, links and panels (SPEC §6b)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.errors import ShopError
from bot.services import ENTITLEMENT_RECHECK, build_services
from bot.sharding import Shards
from bot.skus import CONSUMABLE, SUBSCRIPTION
from tests.unit.world import ADMIN, BUYER, GUILD, OTHER, ROLE, World, add_product

SKU, CANDY = 7001, 7002
_ids = itertools.count(9_000_000)


def add_skus(world: World) -> None:
    world.discord.skus = [
        {"id": str(SKU), "type": SUBSCRIPTION, "name": "VIP Pass", "flags": 256},
        {"id": str(CANDY), "type": CONSUMABLE, "name": "Candy", "flags": 4},
        {"id": "7003", "type": 6, "name": "Group", "flags": 0},
    ]


async def linked(world: World, sku: int = SKU, product: str = "VIP") -> int:
    add_skus(world)
    product_id = await add_product(world, product)
    await world.services.skus.link(GUILD, ADMIN, str(sku), product)
    return product_id


def entitlement(
    sku: int = SKU,
    *,
    user: int | None = BUYER,
    guild: int | None = None,
    ends_at: datetime | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(next(_ids)),
        "sku_id": str(sku),
        "application_id": "1",
        "type": 8,
        "deleted": deleted,
        "starts_at": None,
        "ends_at": None if ends_at is None else ends_at.isoformat(),
        "consumed": False,
    }
    if user is not None:
        data["user_id"] = str(user)
    if guild is not None:
        data["guild_id"] = str(guild)
    return data


def changed(data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = dict(data, **fields)
    if isinstance(out.get("ends_at"), datetime):
        out["ends_at"] = out["ends_at"].isoformat()
    return out


async def receive(world: World, data: dict[str, Any], event: str = "ENTITLEMENT_CREATE") -> None:
    await world.services.skus.receive(dict(data), event)
    await world.run_jobs()


def orders(world: World) -> list[Any]:
    return world.rows("SELECT id, status, source, buyer_id, amount FROM orders ORDER BY id")


def entitlement_states(world: World) -> list[Any]:
    return world.rows("SELECT status, end_reason FROM entitlements ORDER BY id")


async def test_sku_create_grants_the_role_once(world: World) -> None:
    """ENTITLEMENT_CREATE of a linked SKU: one paid order with source `sku`, the role; the
    same create again (and the listing's copy of it) changes nothing."""
    await linked(world)
    data = entitlement()
    await receive(world, data)
    assert ROLE in world.discord.roles[BUYER]
    await receive(world, data)
    await receive(world, data, "list")
    assert [(s, src, b) for _, s, src, b, _ in orders(world)] == [("paid", "sku", BUYER)]
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs WHERE kind='grant_role'") == [(1,)]
    assert [c for c in world.discord.calls if c[0] == "add"] == [("add", BUYER, ROLE)]


async def test_sku_update_with_past_ends_at_ends_access(world: World) -> None:
    """ENTITLEMENT_UPDATE with an `ends_at` in the past ends access now and takes the role."""
    await linked(world)
    data = entitlement()
    await receive(world, data)
    await receive(world, changed(data, ends_at=world.clock.now() - timedelta(minutes=1)),
                  "ENTITLEMENT_UPDATE")  # fmt: skip
    assert entitlement_states(world) == [("expired", "expired")]
    assert ROLE not in world.discord.roles[BUYER]


async def test_sku_update_with_future_ends_at_ends_when_due(world: World) -> None:
    """A future `ends_at` is scheduled: access lasts until then and ends right then (the
    SKU loop wakes at it), once, whichever of it and the expiry pass comes first."""
    await linked(world)
    data = entitlement()
    await receive(world, data)
    end = world.clock.now() + timedelta(days=3)
    await receive(world, changed(data, ends_at=end), "ENTITLEMENT_UPDATE")
    assert entitlement_states(world) == [("active", None)]
    before = world.clock.now()
    world.advance(days=3, minutes=1)
    assert await world.services.skus.end_due(before, world.clock.now()) == 1
    await world.run_jobs()
    assert entitlement_states(world) == [("expired", "expired")]
    assert ROLE not in world.discord.roles[BUYER]
    assert await world.expire() == 0  # the expiry pass finds nothing left to end
    assert await world.services.skus.end_due(before, world.clock.now()) == 1  # idempotent
    assert entitlement_states(world) == [("expired", "expired")]
    assert sum("has ended" in text for _, text in world.discord.dms) == 1


async def test_sku_delete_refunds_and_runs_on_refund(world: World) -> None:
    """ENTITLEMENT_DELETE: the order is refunded, on_refund runs, the role goes; once."""
    product_id = await linked(world)
    async with world.store.transaction() as tx:
        await tx.products.add_action(
            product_id, type="send_message", stage="on_refund", message="Refunded by Discord"
        )
    data = entitlement()
    await receive(world, data)
    deleted = changed(data, deleted=True)
    await receive(world, deleted, "ENTITLEMENT_DELETE")
    await receive(world, deleted, "ENTITLEMENT_DELETE")
    assert [s for _, s, *_ in orders(world)] == ["refunded"]
    assert entitlement_states(world) == [("revoked", "refund")]
    assert ROLE not in world.discord.roles[BUYER]
    assert sum("Refunded by Discord" in text for _, text in world.discord.dms) == 1


@pytest.mark.parametrize(
    "sequence",
    [
        ("delete", "create"),
        ("update", "create"),
        ("create", "delete", "create", "update"),
        ("update", "delete", "create", "create"),
    ],
)
async def test_sku_events_out_of_order_end_the_same(world: World, sequence: tuple[str]) -> None:
    """The ordering rule: a delete or a passed end that arrives before the create leaves
    nothing delivered, and a late create never brings access back."""
    await linked(world)
    data = entitlement()
    reports = {
        "create": (data, "ENTITLEMENT_CREATE"),
        "update": (changed(data, ends_at=world.clock.now() - timedelta(hours=1)),
                   "ENTITLEMENT_UPDATE"),
        "delete": (changed(data, deleted=True), "ENTITLEMENT_DELETE"),
    }  # fmt: skip
    for step in sequence:
        await receive(world, *reports[step])
    assert ROLE not in world.discord.roles[BUYER]
    assert all(status != "active" for status, _ in entitlement_states(world))
    if sequence[0] != "create":
        assert orders(world) == [] and world.discord.calls == []


async def test_sku_consumable_is_consumed_once_after_delivery(world: World) -> None:
    """A consumable (SKU type 3) is consumed after its delivery ran, once, however often the
    create is repeated."""
    await linked(world, CANDY, "Candy")
    data = entitlement(CANDY)
    await world.services.skus.receive(dict(data), "ENTITLEMENT_CREATE")
    await world.services.skus.receive(dict(data), "ENTITLEMENT_CREATE")
    assert world.discord.consumed == []  # planned after the grant, not with it
    await world.run_jobs()
    await receive(world, data)
    assert world.discord.consumed == [int(data["id"])]
    grant, consume = world.rows(
        "SELECT kind FROM delivery_jobs WHERE kind IN ('grant_role', 'consume_entitlement')"
        " ORDER BY id"
    )
    assert (grant[0], consume[0]) == ("grant_role", "consume_entitlement")
    assert world.rows("SELECT consumed FROM discord_entitlements") == [(1,)]


async def test_sku_server_entitlement_is_recorded_without_roles(world: World) -> None:
    """A guild-owned entitlement makes an order of the server (no buyer, no roles, no claim
    code) and shows in the server's report; its deletion refunds it."""
    await linked(world)
    data = entitlement(user=None, guild=GUILD)
    await receive(world, data)
    assert [(s, src, b) for _, s, src, b, _ in orders(world)] == [("paid", "sku", 0)]
    assert world.rows("SELECT claim_code FROM orders") == [(None,)]
    assert world.discord.calls == [] and entitlement_states(world) == []
    held = await world.services.skus.server_entitlements(GUILD)
    assert [(h.sku_name, h.active) for h in held] == [("VIP Pass", True)]
    await receive(world, changed(data, deleted=True), "ENTITLEMENT_DELETE")
    assert [s for _, s, *_ in orders(world)] == ["refunded"]
    assert [h.active for h in await world.services.skus.server_entitlements(GUILD)] == [False]


async def test_sku_reconcile_delivers_missed_and_revokes_deleted(world: World) -> None:
    """Discord's list (deleted ones included, paged) delivers what the gateway never told us
    and refunds what was deleted meanwhile."""
    await linked(world)
    missed = [entitlement(user=BUYER + 100 * n) for n in range(1, 4)]
    refunded = entitlement(user=OTHER)
    await receive(world, refunded)
    assert ROLE in world.discord.roles[OTHER]
    world.discord.entitlements = {int(e["id"]): e for e in missed}
    world.discord.entitlements[int(refunded["id"])] = changed(refunded, deleted=True)
    assert await world.services.skus.reconcile() == 4
    await world.run_jobs()
    for item in missed:
        assert ROLE in world.discord.roles[int(item["user_id"])]
    assert ROLE not in world.discord.roles[OTHER]
    assert sorted(s for _, s, *_ in orders(world)) == ["paid", "paid", "paid", "refunded"]


async def test_sku_reconcile_pages_by_after(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """More than a page: the listing asks again after the last id until a short page."""
    await linked(world)
    monkeypatch.setattr("bot.skus.PAGE", 2)
    items = [entitlement(user=5000 + n) for n in range(5)]
    world.discord.entitlements = {int(e["id"]): e for e in items}
    assert await world.services.skus.reconcile() == 5
    assert len(orders(world)) == 5


async def test_sku_link_refuses_what_the_app_does_not_have(world: World) -> None:
    """Unknown SKU, a subscription group, an unknown product, a product already sold as
    another SKU: clear refusals, nothing linked."""
    add_skus(world)
    await add_product(world, "VIP")
    skus = world.services.skus
    with pytest.raises(ShopError, match="no SKU `424242`"):
        await skus.link(GUILD, ADMIN, "424242", "VIP")
    with pytest.raises(ShopError, match="subscription group"):
        await skus.link(GUILD, ADMIN, "7003", "VIP")
    with pytest.raises(ShopError, match="no product"):
        await skus.link(GUILD, ADMIN, str(SKU), "Nope")
    assert world.rows("SELECT COUNT(*) FROM sku_links") == [(0,)]
    await skus.link(GUILD, ADMIN, str(SKU), "VIP")
    with pytest.raises(ShopError, match="already sold as SKU `VIP Pass`"):
        await skus.link(GUILD, ADMIN, str(CANDY), "VIP")
    rows = await skus.catalogue(GUILD)
    assert [(r.name, r.type_name, r.product) for r in rows] == [
        ("VIP Pass", "subscription", "VIP"),
        ("Candy", "consumable", None),
        ("Group", "subscription group", None),
    ]
    with pytest.raises(ShopError, match="not linked"):
        await skus.unlink(GUILD, ADMIN, str(CANDY))
    await skus.unlink(GUILD, ADMIN, str(SKU))
    assert world.rows("SELECT COUNT(*) FROM sku_links") == [(0,)]


async def test_sku_unlinked_or_foreign_entitlements_make_no_order(world: World) -> None:
    """An entitlement to an SKU no product here sells, or a report without ids, is stored
    (or ignored) but delivers nothing."""
    await linked(world)
    await receive(world, entitlement(CANDY))
    await receive(world, {"sku_id": str(SKU)})
    assert orders(world) == []


async def test_sku_link_delivers_entitlements_seen_before(world: World) -> None:
    """An entitlement reported before its SKU was linked is delivered at the link."""
    add_skus(world)
    await add_product(world, "VIP")
    await receive(world, entitlement())
    assert orders(world) == []
    await world.services.skus.link(GUILD, ADMIN, str(SKU), "VIP")
    await world.run_jobs()
    assert ROLE in world.discord.roles[BUYER]


async def test_sku_panel_shows_a_premium_button(world: World) -> None:
    """A panel shows Discord's premium button (style 6, `sku_id`) for a linked product."""
    await linked(world)
    await add_product(world, "Gold")
    panel = await world.services.panels.post(GUILD, ADMIN, 4242, None, None)
    body = world.discord.messages[panel.message_id][1]
    buttons = [b for row in body["components"] for b in row["components"]]
    premium = [b for b in buttons if b.get("style") == 6]
    assert premium == [{"type": 2, "style": 6, "sku_id": str(SKU)}]
    assert any(b.get("custom_id", "").startswith("shop:buy:") for b in buttons)


async def test_a_process_without_shard_zero_rechecks_entitlement_ends(world: World) -> None:
    """Entitlement events arrive on shard 0 only: a process running other shards hears of no
    report, so it looks at the next end at least every minute (another process may have
    stored a sooner one); the process with shard 0 waits for the end or the next reconcile."""
    now = world.clock.now()
    hour, later = now + timedelta(hours=1), now + timedelta(days=3)
    assert world.services.shards.owns_shard_zero()
    assert world.services.skus.wake_at(now, hour, later) == hour
    assert world.services.skus.wake_at(now, hour, now + timedelta(minutes=5)) == now + timedelta(
        minutes=5
    )
    others = build_services(
        world.settings,
        world.store,
        world.shop.payments,
        world.clock,
        world.discord,
        shards=Shards(4, (2, 3)),
    )
    assert others.shards == Shards(4, (2, 3))
    assert others.skus.wake_at(now, hour, later) == now + ENTITLEMENT_RECHECK
    assert others.skus.wake_at(now, hour, None) == now + ENTITLEMENT_RECHECK
