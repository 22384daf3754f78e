"""Stock is reserved at checkout and never oversold (issue 9 item 6): the last unit goes to one
buyer, unpaid checkouts give it back, a late payment is honoured and the admin told."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from bot.errors import Conflict
from bot.lifecycle import run_expiry
from bot.models import Order
from tests.unit.world import BUYER, GUILD, OTHER, ROLE, World, add_product

RACERS = [BUYER, OTHER, 4, 5, 6]


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a condition (the loop under test runs in this event loop; no fixed sleeps)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def add_licensed(world: World, name: str, keys: list[str], **extra: Any) -> int:
    """A product whose purchase DMs a license key, with `keys` in its pool."""
    product_id = await add_product(world, name, **extra)
    await world.services.actions.add(GUILD, 1, name, type="deliver_license", stage="on_purchase")
    await world.services.actions.add_licenses(GUILD, 1, name, "\n".join(keys))
    return product_id


async def race(world: World, product: str) -> tuple[list[Order], list[BaseException]]:
    """Every racer starts a checkout at once; the checkouts and the refusals."""
    results = await asyncio.gather(
        *(world.shop.start_checkout(GUILD, user, product) for user in RACERS),
        return_exceptions=True,
    )
    orders = [r[0] for r in results if isinstance(r, tuple)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    return orders, refusals


async def expiry_loop_until(world: World, predicate: Callable[[], Any]) -> None:
    """Run the real expiry loop (bot/app.py starts it) until `predicate` holds."""
    task = asyncio.create_task(run_expiry(world.store, world.lifecycle, lambda: None, 3600))
    try:
        await until(predicate)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def status_of(world: World, order: Order) -> str:
    return str(world.rows(f"SELECT status FROM orders WHERE id={order.id}")[0][0])


async def pay(world: World, order: Order) -> None:
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id))


@pytest.mark.parametrize("limit", ["stock", "license_keys"])
async def test_racing_buyers_last_item_one_checkout(world: World, limit: str) -> None:
    """Five buyers race for the last unit (stock 1, or one license key): one checkout, four
    clear "sold out" refusals, and nothing written for them."""
    if limit == "stock":
        await add_product(world, "Gold", stock=1)
    else:
        await add_licensed(world, "Gold", ["KEY-1"])
    orders, refusals = await race(world, "gold")
    assert len(orders) == 1
    assert [type(r) for r in refusals] == [Conflict] * 4
    assert all("**Gold** is sold out." in str(r) for r in refusals)
    assert world.rows("SELECT id, status FROM orders") == [(orders[0].id, "pending")]
    assert len(world.stripe.sessions) == 1
    assert await world.shop.units_left(orders[0].product_id) == 0


async def test_stock_holds_across_concurrent_checkouts(world: World) -> None:
    """Stock 3 and two license keys on another product, five racers each: exactly 3 and 2."""
    await add_product(world, "Gold", stock=3)
    await add_licensed(world, "Keys", ["K1", "K2"], stock=10)
    gold, _ = await race(world, "gold")
    keys, _ = await race(world, "keys")
    assert (len(gold), len(keys)) == (3, 2)
    assert world.rows("SELECT name, stock FROM products ORDER BY name") == [
        ("Gold", 0),
        ("Keys", 8),
    ]
    held = world.rows("SELECT order_id FROM license_keys WHERE order_id IS NOT NULL ORDER BY 1")
    assert held == sorted((o.id,) for o in keys)


async def test_expired_checkout_releases_stock(world: World) -> None:
    """checkout.session.expired gives back the unit and the license key the order held, so
    the next buyer can have them; a late duplicate of the event gives nothing back twice."""
    await add_licensed(world, "Gold", ["KEY-1"], stock=5)  # the one key is the limit
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    with pytest.raises(Conflict, match="sold out"):
        await world.shop.start_checkout(GUILD, OTHER, "gold")
    expired = world.stripe.expire_checkout(order.stripe_session_id)
    await world.deliver(expired)
    expired["id"] = "evt_redelivered"
    await world.deliver(expired)
    assert world.rows("SELECT status FROM orders") == [("expired",)]
    assert world.rows("SELECT stock FROM products") == [(5,)]
    assert world.rows("SELECT order_id FROM license_keys") == [(None,)]
    second, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    await pay(world, second)
    await world.run_jobs()
    assert (OTHER, "Your license key for **Gold**:\n`KEY-1`") in world.discord.dms


async def test_async_payment_failed_releases_stock(world: World) -> None:
    """A delayed payment that fails (async_payment_failed) gives the unit back."""
    await add_product(world, "Gold", stock=1)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id, "unpaid"))
    assert world.rows("SELECT stock FROM products") == [(0,)]
    await world.deliver(world.stripe.async_payment(order.stripe_session_id, succeeded=False))
    assert world.rows("SELECT status FROM orders") == [("failed",)]
    assert world.rows("SELECT stock FROM products") == [(1,)]


async def test_failed_checkout_creation_releases_stock(world: World) -> None:
    """/buy is cancelled (shutdown, a dropped interaction) while Stripe is still creating the
    session: the order is marked failed and its unit and license key are given back at once."""
    await add_licensed(world, "Gold", ["KEY-1"], stock=1)
    world.stripe.inject("/v1/checkout/sessions", status=None, delay=2.0)
    task = asyncio.create_task(world.shop.start_checkout(GUILD, BUYER, "gold"))
    await until(lambda: world.stripe.requests_to("/v1/checkout/sessions", "POST"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.rows("SELECT status, failure_reason FROM orders") == [
        ("failed", "the checkout could not be created")
    ]
    assert world.rows("SELECT stock FROM products") == [(1,)]
    assert world.rows("SELECT order_id FROM license_keys") == [(None,)]
    world.stripe.clear_faults()
    order, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    assert order.checkout_url


async def test_stale_pending_released_by_loop(world: World) -> None:
    """A checkout left pending (Stripe's expired event lost, or the process died before the
    session was made) is expired on our side by the expiry loop once its link's time is up,
    and its unit and license key go back; a fresh checkout is left alone."""
    await add_licensed(world, "Gold", ["KEY-1", "KEY-2"], stock=5)
    lost, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    world.advance(minutes=45)  # the link lasted 31 min; the loop waits 10 more for Stripe
    fresh, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    await expiry_loop_until(world, lambda: status_of(world, lost) != "pending")
    assert world.rows("SELECT id, status FROM orders ORDER BY id") == [
        (lost.id, "expired"),
        (fresh.id, "pending"),
    ]
    assert world.rows("SELECT stock FROM products") == [(4,)]
    assert world.rows("SELECT order_id FROM license_keys ORDER BY id") == [(None,), (fresh.id,)]
    assert await world.shop.units_left(fresh.product_id) == 1


async def test_paid_after_sold_out_is_honoured_and_admin_told(world: World) -> None:
    """The buyer pays in the link's last second, but the event comes after the checkout was
    closed as stale and the last unit went to someone else: the payment is honoured (order
    paid, entitlement, role), stock does not go below zero, and the admin is told (an
    audit row, shown by /shop diagnose)."""
    await add_product(world, "Gold", stock=1)
    late, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    paid_late = world.stripe.complete_checkout(late.stripe_session_id)  # not delivered yet
    world.advance(minutes=45)
    await expiry_loop_until(world, lambda: status_of(world, late) == "expired")
    other, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    await pay(world, other)
    assert (await world.services.reports.problems(GUILD)).oversold == 0
    await world.deliver(paid_late)
    await world.run_jobs()
    assert world.rows("SELECT id, status FROM orders ORDER BY id") == [
        (late.id, "paid"),
        (other.id, "paid"),
    ]
    assert world.rows("SELECT user_id, status FROM entitlements ORDER BY id") == [
        (OTHER, "active"),
        (BUYER, "active"),
    ]
    assert world.discord.roles[BUYER] == {ROLE}
    assert world.rows("SELECT stock FROM products") == [(0,)]
    told = world.rows("SELECT user_id, detail FROM audit_log WHERE kind='order.oversold'")
    assert len(told) == 1 and told[0][0] == BUYER and '"shortage": "sold out"' in told[0][1]
    assert (await world.services.reports.problems(GUILD)).oversold == 1


async def test_failed_then_paid_takes_stock_again(world: World) -> None:
    """FAILED → PAID (the failure was delivered first): the unit given back at the failure is
    taken again, so stock is not sold twice; with none left it is honoured and reported."""
    await add_product(world, "Gold", stock=2)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id, "unpaid"))
    session = dict(world.stripe.sessions[order.stripe_session_id])
    await world.deliver(world.stripe.make_event("checkout.session.async_payment_failed", session))
    assert world.rows("SELECT stock FROM products") == [(2,)]
    session["payment_status"] = "paid"
    succeeded = world.stripe.make_event("checkout.session.async_payment_succeeded", session)
    await world.deliver(succeeded)
    assert world.rows("SELECT status FROM orders") == [("paid",)]
    assert world.rows("SELECT stock FROM products") == [(1,)]
    assert world.rows("SELECT COUNT(*) FROM audit_log WHERE kind='order.oversold'") == [(0,)]


async def test_license_key_product_sold_out_when_no_free_key(world: World) -> None:
    """Two keys: two buyers get checkouts (each holding a key), the third is refused "sold
    out" instead of paying for a key that does not exist; the listing says sold out, and
    after both paid each got their own key."""
    product_id = await add_licensed(world, "Gold", ["KEY-1", "KEY-2"])
    first, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    second, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")
    with pytest.raises(Conflict, match=r"\*\*Gold\*\* is sold out"):
        await world.shop.start_checkout(GUILD, 4, "gold")
    assert await world.shop.units_left(product_id) == 0
    await pay(world, first)
    await pay(world, second)
    await world.run_jobs()
    with pytest.raises(Conflict, match="sold out"):
        await world.shop.start_checkout(GUILD, 4, "gold")
    keys = sorted(text for _, text in world.discord.dms if "license key" in text)
    assert keys == [
        "Your license key for **Gold**:\n`KEY-1`",
        "Your license key for **Gold**:\n`KEY-2`",
    ]
    assert world.rows("SELECT COUNT(*) FROM orders") == [(2,)]
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs WHERE status='failed'") == [(0,)]
