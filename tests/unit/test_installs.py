"""Issue 9 items 7 and 8: two installs sharing one Stripe account never touch each other's
orders or keys; every buyer has one Stripe customer, reused by every checkout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.payments import StripeGateway
from bot.services import Services, build_services
from bot.shop import ProductDraft
from bot.store import Store
from tests.unit.world import (
    BUYER,
    GUILD,
    OTHER,
    SECRET,
    RecordingDiscord,
    World,
    add_product,
    make_settings,
)  # fmt: skip


@pytest_asyncio.fixture
async def other(world: World, tmp_path: Path) -> AsyncIterator[Services]:
    """Install B: its own database, the same Stripe account (and clock) as `world` (A)."""
    settings = make_settings(world.stripe, tmp_path / "b.db")
    store = Store(settings.database.path, world.clock, url=settings.database.url_value)
    await store.open()
    payments = StripeGateway(world.stripe.secret_key, SECRET, world.stripe.api_base)
    try:
        yield build_services(settings, store, payments, world.clock, RecordingDiscord())
    finally:
        await payments.close()
        await store.close()


async def test_two_installs_on_one_stripe_account(world: World, other: Services) -> None:
    """B's order 1 without a stored session does not adopt A's paid session 1; both can open
    checkouts for their order 1 (no shared idempotency key); A's event is ignored by B
    without noise, and A's diagnose shows no failure for B's events."""
    await add_product(world, "gold")
    await other.shop.add_product(GUILD, 1, ProductDraft(name="gold", price="4.99", role_id=555))
    async with other.inbox.store.transaction() as tx:  # B crashed before storing its session
        stranded = await tx.orders.create(guild_id=GUILD, buyer_id=OTHER, recipient_id=OTHER,
                                          product_id=1, amount=499, currency="usd")  # fmt: skip
    order_a, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    assert order_a.id == stranded.id == 1
    event = world.stripe.complete_checkout(order_a.stripe_session_id)

    await world.deliver(event, inbox=other.inbox)  # B's endpoint gets every event too
    async with other.inbox.store.reading() as tx:
        assert (await tx.orders.get(stranded.id)).status == "pending"  # type: ignore[union-attr]
        stored = await tx.events.get(event["id"])
        assert stored is not None and stored.status == "ignored"
        assert await tx.entitlements.active_of_member(GUILD, OTHER) == []
    await world.deliver(event)
    assert (await world.order(order_a.id)).status == "paid"

    order_b2, _ = await other.shop.start_checkout(GUILD, OTHER, "gold")  # B's order 2
    order_a2, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")  # A's order 2
    assert order_a2.id == order_b2.id == 2
    assert order_a2.stripe_session_id != order_b2.stripe_session_id
    b_event = world.stripe.expire_checkout(order_b2.stripe_session_id)
    await world.deliver(b_event)
    problems = await world.services.reports.problems(GUILD)
    assert problems.failed_events == 0
    assert (await world.order(order_a2.id)).status == "pending"
    assert world.store.install_id != other.inbox.store.install_id


async def test_one_stripe_customer_per_buyer(world: World) -> None:
    """Every checkout of a buyer uses the same customer, so /manage reaches all of them."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    await add_product(world, "Max", kind="subscription", interval="month")
    await add_product(world, "gold")
    customers = set()
    for name in ("pro", "max", "gold"):
        order, _ = await world.shop.start_checkout(GUILD, BUYER, name)
        world.stripe.complete_checkout(order.stripe_session_id)
        await world.flush()
        customers.add(world.stripe.sessions[order.stripe_session_id]["customer"])
    assert len(customers) == 1
    (customer,) = customers
    subs = [s for s in world.stripe.subscriptions.values() if s["customer"] == customer]
    assert len(subs) == 2
    assert world.stripe.customers[customer]["metadata"]["discord_user_id"] == str(BUYER)
    url = await world.services.admin_ops.portal(GUILD, BUYER)
    assert url.startswith("https://billing.stripe.com/")
    portal = world.stripe.requests_to("/v1/billing_portal/sessions", "POST")[-1].params
    assert portal["customer"] == customer
    order, _ = await world.shop.start_checkout(GUILD, OTHER, "gold")  # another buyer
    assert world.stripe.sessions[order.stripe_session_id]["customer"] != customer
