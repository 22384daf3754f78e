"""Stripe errors are worded for the operation that failed: checkout, refund, portal, cancel."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from bot.errors import Conflict, PaymentError
from bot.payments import StripeGateway
from tests.unit.world import ADMIN, BUYER, GUILD, SECRET, World, add_product, buy


def refund_posts(world: World) -> list[tuple[int | None, str | None]]:
    """Status and idempotency key of every POST /v1/refunds the fake answered."""
    found = []
    for record in world.stripe.requests:
        if record.method == "POST" and record.path == "/v1/refunds":
            found.append((record.status, record.idempotency_key))
    return found


@pytest.fixture
async def unreachable() -> AsyncIterator[StripeGateway]:
    """A gateway whose Stripe address refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = StripeGateway("sk_test_fake", SECRET, f"http://127.0.0.1:{port}")
    yield gateway
    await gateway.close()


async def test_refund_error_message_is_about_refund(
    world: World, unreachable: StripeGateway
) -> None:
    """Stripe refusing a refund says so, with Stripe's reason; no word about a checkout.
    Stripe out of reach says it could not be reached and nothing was refunded."""
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    world.stripe.inject(
        "/v1/refunds",
        status=400,
        error_type="invalid_request_error",
        message="This account cannot refund right now.",
    )
    with pytest.raises(PaymentError) as refused:
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "asked")
    text = refused.value.user_message
    assert text == "Stripe refused the refund: This account cannot refund right now."
    assert "checkout" not in text and "charged" not in text

    world.stripe.inject("/v1/refunds", status=500, count=3)  # every attempt of the SDK
    with pytest.raises(PaymentError) as failed:
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "asked")
    assert failed.value.user_message == (
        "Stripe had a problem with the refund; nothing was refunded. Please try again."
    )
    assert (await world.order(order.id)).status == "paid"

    with pytest.raises(PaymentError) as offline:
        await unreachable.refund(
            order.id, str(order.stripe_payment_intent_id), "asked", install_id="i"
        )
    assert offline.value.user_message == (
        "Stripe could not be reached; nothing was refunded. Please try again in a minute."
    )


async def test_portal_error_message_is_about_portal(
    world: World, unreachable: StripeGateway
) -> None:
    """/manage failures talk about the billing portal, not a checkout or a charge."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    await buy(world, "pro")
    world.stripe.inject(
        "/v1/billing_portal/sessions",
        status=400,
        error_type="invalid_request_error",
        message="No configuration provided and your test mode default configuration has "
        "not been created.",
    )
    with pytest.raises(PaymentError) as refused:
        await world.services.admin_ops.portal(GUILD, BUYER)
    assert refused.value.user_message == (
        "Stripe could not open the billing portal (the shop's customer portal may not be set "
        "up in the Stripe dashboard); tell an admin."
    )
    world.stripe.inject("/v1/billing_portal/sessions", status=500, count=3)
    with pytest.raises(PaymentError) as failed:
        await world.services.admin_ops.portal(GUILD, BUYER)
    assert failed.value.user_message == (
        "Stripe had a problem opening the billing portal; no portal link was made. "
        "Please try again."
    )
    with pytest.raises(PaymentError) as offline:
        await unreachable.portal_url("cus_x", "https://discord.com/channels/1")
    assert offline.value.user_message.startswith("Stripe could not be reached")
    assert "charged" not in offline.value.user_message


async def test_cancel_error_message_is_about_cancelling(unreachable: StripeGateway) -> None:
    """A failed subscription cancel says the subscription was not canceled."""
    with pytest.raises(PaymentError) as offline:
        await unreachable.cancel_subscription("sub_x")
    assert offline.value.user_message == (
        "Stripe could not be reached; the subscription was not canceled. "
        "Please try again in a minute."
    )


async def test_second_refund_says_already_requested(world: World) -> None:
    """A second /shop refund (another reason, before Stripe's webhook) is refused from our
    own records: one refund request reaches Stripe; after the webhook, "already refunded"."""
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    first = await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "asked")
    with pytest.raises(Conflict) as again:
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "another reason")
    assert again.value.user_message == (
        f"A refund of order #{order.id} was already requested ({first.refund_id}); access "
        "ends as soon as Stripe confirms it."
    )
    assert refund_posts(world) == [(200, f"refund:{world.store.install_id}:{order.id}")]
    await world.flush()
    with pytest.raises(Conflict, match="already refunded"):
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "third")
    assert len(refund_posts(world)) == 1


async def test_stripe_saying_already_refunded_reads_as_already_refunded(world: World) -> None:
    """If our records missed a refund, Stripe's answers say the same thing: the idempotency
    key reused with another reason (400 idempotency_error) and a charge refunded elsewhere
    (400 charge_already_refunded)."""
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    gateway = world.inbox.payments
    pi = str(order.stripe_payment_intent_id)
    await gateway.refund(order.id, pi, "asked", install_id="i")
    with pytest.raises(
        Conflict,
        match=f"Order #{order.id} is already refunded, or its refund was already requested",
    ):
        await gateway.refund(order.id, pi, "another reason", install_id="i")
    other = await buy(world, "gold")
    world.stripe.refund(str(other.stripe_payment_intent_id))  # from the dashboard
    with pytest.raises(Conflict, match=f"Order #{other.id} is already refunded"):
        await gateway.refund(other.id, str(other.stripe_payment_intent_id), "asked", install_id="i")
    assert [status for status, _ in refund_posts(world)] == [200, 400, 400]
