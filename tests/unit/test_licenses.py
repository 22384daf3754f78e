"""License validation (SPEC §3, §5c): device binding, limits, revoked vs expired, reset,
unknown keys on the known keys' code path, and rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from bot.licenses import TOUCH_EVERY, LicenseCheck, LicenseInputError, LicenseService, RateLimited
from bot.shop import ProductDraft
from tests.unit.world import ADMIN, BUYER, GUILD, OTHER, World, buy


async def licensed(world: World, name: str, keys: list[str], **extra: Any) -> int:
    """A product whose purchase DMs one of `keys`."""
    product = await world.shop.add_product(
        GUILD, ADMIN, ProductDraft(name=name, price="4.99", **extra)
    )
    await world.services.actions.add(
        GUILD, ADMIN, name, type="deliver_license", stage="on_purchase"
    )
    await world.services.actions.add_licenses(GUILD, ADMIN, name, "\n".join(keys))
    return product.id


async def bought_key(world: World, name: str = "App", key: str = "KEY-AAA", **extra: Any) -> int:
    product_id = await licensed(world, name, [key], **extra)
    await buy(world, name)
    await world.run_jobs()
    assert any(key in text for _, text in world.discord.dms)
    return product_id


def check(result: LicenseCheck | RateLimited) -> LicenseCheck:
    assert isinstance(result, LicenseCheck), result
    return result


async def test_license_validate_binds_first_hwid_refuses_second_until_reset(world: World) -> None:
    """A bought key validates on hwid A (binding it), again on A, is refused on B with
    device_limit, and validates on B after a reset."""
    product_id = await bought_key(world)
    lic = world.services.licenses
    first = check(await lic.validate("KEY-AAA", "hw-A", "1.2.3.4"))
    assert first == LicenseCheck(True, "active", product_id, BUYER, None)
    assert check(await lic.validate("KEY-AAA", "hw-A", "1.2.3.4")).status == "active"
    refused = check(await lic.validate("KEY-AAA", "hw-B", "1.2.3.4"))
    assert (refused.valid, refused.status, refused.product_id) == (
        False,
        "device_limit",
        product_id,
    )
    assert check(await lic.validate("KEY-AAA", None, "1.2.3.4")).status == "active"
    assert await lic.reset("KEY-AAA", GUILD, ADMIN)
    assert check(await lic.validate("KEY-AAA", "hw-B", "1.2.3.4")).status == "active"
    assert check(await lic.validate("KEY-AAA", "hw-A", "1.2.3.4")).status == "device_limit"
    assert world.rows("SELECT hwid FROM license_devices") == [("hw-B",)]


async def test_license_max_devices_binds_up_to_the_product_limit(world: World) -> None:
    """A product with max_devices 3 binds three machines; the fourth gets device_limit."""
    await bought_key(world, max_devices=3)
    lic = world.services.licenses
    for hw in ("a", "b", "c", "a", "c"):
        assert check(await lic.validate("KEY-AAA", hw, "c")).status == "active"
    assert check(await lic.validate("KEY-AAA", "d", "c")).status == "device_limit"


async def test_license_revoked_after_refund_expired_after_its_time(world: World) -> None:
    """Refunded order → revoked; a timed product past its end → expired."""
    await bought_key(world, "App", "KEY-R")
    order_pi = world.rows("SELECT stripe_payment_intent_id FROM orders")[0][0]
    world.stripe.refund(order_pi)
    await world.flush()
    result = check(await world.services.licenses.validate("KEY-R", "hw", "c"))
    assert (result.valid, result.status) == (False, "revoked")

    await bought_key(world, "Week", "KEY-T", kind="timed", duration_days=7)
    ok = check(await world.services.licenses.validate("KEY-T", "hw", "c"))
    assert ok.status == "active" and ok.expires_at is not None
    world.advance(days=8)
    assert check(await world.services.licenses.validate("KEY-T", "hw", "c")).status == "expired"
    await world.expire()  # the expiry loop closes it: still expired, never revoked
    assert check(await world.services.licenses.validate("KEY-T", "hw", "c")).status == "expired"


async def test_license_revoked_by_admin(world: World) -> None:
    """An admin's /shop revoke ends the entitlement: the key answers revoked."""
    await bought_key(world)
    await world.services.admin_ops.revoke(GUILD, ADMIN, BUYER, "App")
    assert check(await world.services.licenses.validate("KEY-AAA", "hw", "c")).status == "revoked"


async def test_license_unknown_key_runs_the_same_queries_as_a_known_one(world: World) -> None:
    """Unknown keys answer `unknown` through the same statements as a known key (refused
    device, or a machine bound and seen lately), so timing cannot tell them apart (no timing
    asserts); none of the three writes anything (a check is a read: no commit, no fsync)."""
    await bought_key(world, max_devices=1)
    lic = world.services.licenses
    assert check(await lic.validate("KEY-AAA", "hw-A", "c")).status == "active"
    statements: list[str] = []
    runs: list[list[str]] = []
    await world.store.db.conn.set_trace_callback(statements.append)
    reader = world.store.db.reader
    assert reader is not None
    reader.set_trace_callback(statements.append)  # checks read on the peek connection
    try:
        for key, hwid in (("KEY-AAA", "hw-B"), ("KEY-AAA", "hw-A"), ("KEY-ZZZ", "hw-B")):
            results = check(await lic.validate(key, hwid, "c"))
            runs.append(list(statements))
            statements.clear()
            runs[-1].insert(0, results.status)
    finally:
        await world.store.db.conn.set_trace_callback(None)
        reader.set_trace_callback(None)
    assert [run[0] for run in runs] == ["device_limit", "active", "unknown"]
    shapes = [[s.split(" WHERE")[0] for s in run[1:]] for run in runs]
    assert shapes[0] == shapes[1] == shapes[2] and len(shapes[0]) >= 2  # key lookup, devices
    written = [s for run in runs for s in run[1:] if s.split()[0].upper() in WRITES]
    assert written == []


WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT"}  # a read snapshot BEGINs, then ends


async def test_license_bound_machine_is_noted_seen_at_most_every_few_minutes(world: World) -> None:
    """A bound machine's last_seen_at moves when TOUCH_EVERY has passed, not on every check."""
    await bought_key(world)
    lic = world.services.licenses
    assert check(await lic.validate("KEY-AAA", "hw-A", "c")).status == "active"
    first = world.rows("SELECT last_seen_at FROM license_devices")
    world.advance(seconds=(TOUCH_EVERY.total_seconds() - 1))
    assert check(await lic.validate("KEY-AAA", "hw-A", "c")).status == "active"
    assert world.rows("SELECT last_seen_at FROM license_devices") == first
    world.advance(seconds=2)
    assert check(await lic.validate("KEY-AAA", "hw-A", "c")).status == "active"
    assert world.rows("SELECT last_seen_at FROM license_devices") != first


async def test_license_undelivered_key_is_unknown_and_reset_refuses_it(world: World) -> None:
    """A key in the pool that no order was given answers unknown; reset changes nothing."""
    await licensed(world, "App", ["KEY-POOL"])
    assert check(await world.services.licenses.validate("KEY-POOL", "hw", "c")).status == "unknown"
    assert not await world.services.licenses.reset("KEY-POOL", GUILD)
    assert not await world.services.licenses.reset("KEY-NONE")


async def test_license_reset_is_scoped_to_the_admins_guild(world: World) -> None:
    """/shop license reset in another server does not find this server's key."""
    await bought_key(world)
    assert check(await world.services.licenses.validate("KEY-AAA", "hw", "c")).status == "active"
    assert not await world.services.licenses.reset("KEY-AAA", GUILD + 1, OTHER)
    assert world.rows("SELECT COUNT(*) FROM license_devices") == [(1,)]


async def test_license_validate_rejects_bad_input(world: World) -> None:
    """Empty or oversized keys and hwids are refused before any lookup."""
    for key, hwid in (("", None), ("x" * 201, None), ("K", ""), ("K", "h" * 201)):
        with pytest.raises(LicenseInputError):
            await world.services.licenses.validate(key, hwid, "c")


async def test_license_validate_rate_limited_per_key_and_per_client(world: World) -> None:
    """Past the per-key limit a key gets RateLimited with a retry-after; other clients and
    keys still pass until the per-client limit; the window reopens on the clock."""
    await bought_key(world)
    lic = LicenseService(world.store, world.clock, per_key_per_minute=3, per_client_per_minute=5)
    for _ in range(3):
        check(await lic.validate("KEY-AAA", "hw", "a"))
    limited = await lic.validate("KEY-AAA", "hw", "b")
    assert isinstance(limited, RateLimited) and limited.scope == "key"
    assert 0 < limited.retry_after <= 60
    for n in range(2):
        check(await lic.validate(f"OTHER-{n}", None, "a"))
    by_client = await lic.validate("OTHER-9", None, "a")
    assert isinstance(by_client, RateLimited) and by_client.scope == "client"
    world.clock.advance(seconds=61)
    assert check(await lic.validate("KEY-AAA", "hw", "a")).status == "active"
