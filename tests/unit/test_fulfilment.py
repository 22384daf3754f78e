"""Checkout → Stripe event → order paid, entitlement and jobs: exactly once, from our records."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import Conflict, NotFound
from bot.shop import ProductDraft
from tests.unit.world import ADMIN, BUYER, GUILD, OTHER, World


async def add_gold(world: World, **extra: Any) -> int:
    product = await world.shop.add_product(
        GUILD, ADMIN, ProductDraft(name="Gold", price="4.99", role_id=555, **extra)
    )
    return product.id


async def test_checkout_session_matches_the_order(world: World) -> None:
    """/buy creates a payment-mode session with our order id, amount, metadata and expiry."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    session = world.stripe.sessions[order.stripe_session_id]
    assert session["mode"] == "payment"
    assert session["amount_total"] == 499 and session["currency"] == "usd"
    install = world.store.install_id
    assert session["client_reference_id"] == f"{install}-{order.id}"
    assert session["metadata"]["user_id"] == str(BUYER)
    assert session["metadata"]["install_id"] == install
    pi_meta = world.stripe.requests_to("/v1/checkout/sessions", "POST")[0].params
    assert pi_meta["payment_intent_data"]["metadata"]["order_id"] == str(order.id)
    assert 30 * 60 <= session["expires_at"] - world.stripe.now() <= 32 * 60
    assert order.checkout_url == session["url"]


async def test_paid_event_fulfils_once(world: World) -> None:
    """A paid checkout → order paid, entitlement, one grant job; the duplicate changes nothing."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    event = world.stripe.complete_checkout(order.stripe_session_id)
    assert await world.deliver(event) is True
    assert await world.deliver(event) is False
    assert world.rows("SELECT status, claim_code IS NOT NULL FROM orders") == [("paid", 1)]
    assert world.rows("SELECT user_id, status FROM entitlements") == [(BUYER, "active")]
    assert world.rows("SELECT kind, user_id FROM delivery_jobs") == [("grant_role", BUYER)]
    assert world.rows("SELECT COUNT(*) FROM webhook_events") == [(1,)]


async def test_racing_events_for_one_order(world: World) -> None:
    """completed + async_payment_succeeded for the same order → still one entitlement."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    first = world.stripe.complete_checkout(order.stripe_session_id)
    second = world.stripe.make_event(
        "checkout.session.async_payment_succeeded", first["data"]["object"]
    )
    await world.deliver(first)
    await world.deliver(second)
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(1,)]
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs") == [(1,)]


async def test_unpaid_waits_for_async_payment(world: World) -> None:
    """payment_status unpaid grants nothing until async_payment_succeeded arrives."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id, "unpaid"))
    assert world.rows("SELECT status FROM orders") == [("pending",)]
    await world.deliver(world.stripe.async_payment(order.stripe_session_id, succeeded=True))
    assert world.rows("SELECT status FROM orders") == [("paid",)]
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(1,)]


async def test_forged_metadata_grants_only_our_buyer(world: World) -> None:
    """Metadata naming another user is ignored: the order's own buyer gets the access."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    event = world.stripe.complete_checkout(order.stripe_session_id)
    event["data"]["object"]["metadata"]["user_id"] = str(OTHER)
    event["data"]["object"]["metadata"]["recipient_id"] = str(OTHER)
    await world.deliver(event)
    assert world.rows("SELECT user_id FROM entitlements") == [(BUYER,)]


async def test_unknown_or_mismatched_session_is_kept_not_applied(world: World) -> None:
    """An event whose session does not match our order is stored as failed and grants nothing."""
    await add_gold(world)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    event = world.stripe.complete_checkout(order.stripe_session_id)
    event["id"] = "evt_forged"
    event["data"]["object"]["id"] = "cs_test_somebody_else"
    await world.deliver(event)
    assert world.rows("SELECT status FROM webhook_events") == [("failed",)]
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(0,)]
    assert world.rows("SELECT status FROM orders") == [("pending",)]


async def test_expired_checkout_returns_stock(world: World) -> None:
    """checkout.session.expired → order expired and its reserved stock returned."""
    await add_gold(world, stock=1)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    with pytest.raises(Conflict, match="sold out"):
        await world.shop.start_checkout(GUILD, OTHER, "gold")
    await world.deliver(world.stripe.expire_checkout(order.stripe_session_id))
    assert world.rows("SELECT status FROM orders") == [("expired",)]
    assert world.rows("SELECT stock FROM products") == [(1,)]


async def test_stripe_failure_marks_order_failed(world: World) -> None:
    """A Stripe error at checkout → clear message, order failed, stock returned."""
    await add_gold(world, stock=5)
    world.stripe.inject(
        "/v1/checkout/sessions", status=400, count=1, error_type="invalid_request_error"
    )
    from bot.errors import PaymentError

    with pytest.raises(PaymentError):
        await world.shop.start_checkout(GUILD, BUYER, "gold")
    assert world.rows("SELECT status FROM orders") == [("failed",)]
    assert world.rows("SELECT stock FROM products") == [(5,)]


async def test_open_checkout_cap(world: World) -> None:
    """A member cannot hold more than shop.max_open_checkouts unpaid links."""
    for name in ("Gold", "Silver", "Bronze", "Iron"):
        await world.shop.add_product(GUILD, ADMIN, ProductDraft(name=name, price="4.99"))
    for name in ("gold", "silver", "bronze"):
        await world.shop.start_checkout(GUILD, BUYER, name)
    with pytest.raises(Conflict, match="checkout links open"):
        await world.shop.start_checkout(GUILD, BUYER, "iron")


async def test_buy_returns_the_still_open_link(world: World) -> None:
    """Issue 11: /buy of a product whose link is still open gives that link again (no second
    order, no second reservation); close to its expiry, or as a gift, a new one is made."""
    await world.shop.add_product(GUILD, ADMIN, ProductDraft(name="Gold", price="4.99", stock=5))
    first, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    again, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    assert (again.id, again.checkout_url) == (first.id, first.checkout_url)
    assert world.rows("SELECT COUNT(*) FROM orders") == [(1,)]
    assert world.rows("SELECT stock FROM products") == [(4,)]
    gift, _ = await world.shop.start_checkout(GUILD, BUYER, "gold", gift_to=OTHER)
    assert gift.id != first.id
    world.advance(minutes=27)  # 30-minute links: less than 5 minutes left
    fresh, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    assert fresh.id not in (first.id, gift.id)


async def test_claim_code_attaches_unclaimed_order_once(world: World) -> None:
    """An unclaimed paid order goes to the first claimer; a second claimer is refused as if
    the code did not exist."""
    product_id = await add_gold(world)
    async with world.store.transaction() as tx:
        order = await tx.orders.create(
            guild_id=GUILD,
            buyer_id=BUYER,
            recipient_id=None,
            product_id=product_id,
            amount=499,
            currency="usd",
        )
        await tx.orders.update(order.id, stripe_session_id="cs_test_outside")
        order = await tx.orders.get(order.id)
    session = {
        "id": "cs_test_outside",
        "client_reference_id": str(order.id),
        "payment_status": "paid",
        "amount_total": 499,
        "currency": "usd",
    }
    await world.deliver(world.stripe.make_event("checkout.session.completed", session))
    code = world.rows("SELECT claim_code FROM orders")[0][0]
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(0,)]
    message = await world.members.claim(GUILD, OTHER, code.lower().replace("-", " "))
    assert "now yours" in message
    with pytest.raises(NotFound, match="No order here has that claim code"):
        await world.members.claim(GUILD, BUYER, code)
    with pytest.raises(NotFound):
        await world.members.claim(GUILD + 1, BUYER, code)
    assert world.rows("SELECT user_id FROM entitlements") == [(OTHER,)]
