"""Refunds and disputes of subscription payments, mapped through Stripe's InvoicePayments."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import pytest

from bot.errors import Conflict, PaymentError
from bot.inbox import retry_delay
from bot.models import Order
from tests.unit.test_lifecycle import in_order_and_reversed_twice
from tests.unit.world import (
    ADMIN,
    BUYER,
    GUILD,
    ROLE,
    World,
    add_message,
    add_product,
    buy,
)


async def subscribe(world: World, renewals: int = 0) -> Order:
    """A member buys the Pro subscription (with an on_refund and on_chargeback message);
    `renewals` more periods are paid; the role is given."""
    pro = await add_product(world, "Pro", kind="subscription", interval="month")
    await add_message(world, pro, "on_refund", "pro refunded")
    await add_message(world, pro, "on_chargeback", "pro chargeback")
    order = await buy(world, "pro")
    assert order.stripe_subscription_id is not None
    for _ in range(renewals):
        world.advance(days=31)
        world.stripe.renew_subscription(order.stripe_subscription_id)
        await world.flush()
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    return order


def latest_payment(world: World, order: Order) -> str:
    """The payment intent of the subscription's latest invoice (Stripe links them only
    through an InvoicePayment)."""
    sub = world.stripe.subscriptions[str(order.stripe_subscription_id)]
    return world.stripe.invoice_payment_intent(sub["latest_invoice"])


def sent(world: World, text: str) -> bool:
    return any(text in message for user, message in world.discord.dms if user == BUYER)


def lookups(world: World) -> list[dict[str, Any]]:
    return [r.params for r in world.stripe.requests if r.path == "/v1/invoice_payments"]


async def test_subscription_refund_ends_access(world: World) -> None:
    """A full refund of a renewal's payment (e.g. from the dashboard) ends the access:
    order refunded, entitlement revoked, on_refund run, role removed."""
    order = await subscribe(world, renewals=1)
    payment = latest_payment(world, order)
    refunded = world.stripe.refund(payment)
    charge = refunded["data"]["object"]
    assert "invoice" not in charge and charge["metadata"] == {}  # nothing names our order
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == "refunded"
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("revoked", "refund")]
    assert world.discord.roles[BUYER] == set()
    assert sent(world, "pro refunded")
    assert lookups(world) == [
        {
            "payment": {"type": "payment_intent", "payment_intent": payment},
            "expand": ["data.invoice"],
            "limit": 100,
        }
    ]
    world.stripe.dispute(payment)  # a later dispute of the same payment
    await world.flush()
    assert len(lookups(world)) == 1  # the link is on record now
    assert (await world.order(order.id)).status == "disputed"


async def test_subscription_partial_refund_keeps_access(world: World) -> None:
    """A partial refund of a subscription payment is recorded against its order only."""
    order = await subscribe(world)
    world.stripe.refund(latest_payment(world, order), amount=100)
    await world.flush()
    assert (await world.order(order.id)).status == "paid"
    assert world.rows("SELECT status FROM entitlements") == [("active",)]
    assert world.rows(
        "SELECT json_extract(detail, '$.order_id') FROM audit_log WHERE kind='order.partial_refund'"
    ) == [(order.id,)]


async def test_subscription_dispute_ends_access(world: World) -> None:
    """A dispute of the first invoice's payment is a chargeback: order disputed, access
    revoked as a chargeback, on_chargeback run, role removed."""
    order = await subscribe(world)
    world.stripe.dispute(latest_payment(world, order))
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == "disputed"
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("revoked", "chargeback")]
    assert world.discord.roles[BUYER] == set()
    assert sent(world, "pro chargeback")


async def test_refund_of_someone_elses_payment_changes_nothing(world: World) -> None:
    """A refund whose payment paid an invoice of a subscription we never sold (metadata
    claiming our order id does not count) is recorded and maps to no order."""
    order = await subscribe(world)
    stranger = world.stripe.create_subscription(
        customer_id=world.stripe.create_customer({"email": "x@example.com"})["id"],
        price=next(iter(world.stripe.prices.values())),
        quantity=1,
        metadata={"order_id": str(order.id), "guild_id": str(GUILD)},
    )[0]
    world.stripe.refund(world.stripe.invoice_payment_intent(stranger["latest_invoice"]))
    await world.flush()
    assert (await world.order(order.id)).status == "paid"
    assert world.rows("SELECT status FROM entitlements") == [("active",)]
    assert world.rows("SELECT stripe_subscription_id FROM invoice_payments") == [(stranger["id"],)]


async def test_subscription_refund_before_checkout_is_applied_when_paid(world: World) -> None:
    """The refund arrives before checkout.session.completed and invoice.paid: it waits as
    a fact and is applied when the order is paid; the role is never given."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "pro")
    world.stripe.complete_checkout(order.stripe_session_id)
    sub = world.stripe.sessions[order.stripe_session_id]["subscription"]
    refunded = world.stripe.refund(
        world.stripe.invoice_payment_intent(world.stripe.subscriptions[sub]["latest_invoice"])
    )
    world.delivered.add(refunded["id"])
    await world.deliver(copy.deepcopy(refunded))
    assert (await world.order(order.id)).status == "pending"
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == "refunded"
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("revoked", "refund")]
    assert [call for call in world.discord.calls if call[0] == "add"] == []


async def test_subscription_events_in_reverse_and_twice_end_in_the_same_state(
    world: World, tmp_path: Any
) -> None:
    """Purchase, renewal, a refund of the renewal and a dispute of the first payment,
    delivered in reverse order and each twice, end as they do in order."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "pro")
    before = tmp_path / "before.db"
    await world.store.db.backup(before)
    fake = world.stripe
    fake.complete_checkout(order.stripe_session_id)
    sub = fake.sessions[order.stripe_session_id]["subscription"]
    first = fake.invoice_payment_intent(fake.subscriptions[sub]["latest_invoice"])
    world.advance(days=31)
    fake.renew_subscription(sub)
    fake.refund(fake.invoice_payment_intent(fake.subscriptions[sub]["latest_invoice"]))
    fake.dispute(first)
    events = [copy.deepcopy(event) for event in fake.events.values()]
    in_order = await in_order_and_reversed_twice(world, events, before)
    assert [row[1] for row in in_order["orders"]] == ["disputed"]
    assert [row[3:6:2] for row in in_order["entitlements"]] == [("revoked", "chargeback")]


async def test_refund_waits_while_stripe_cannot_say_which_invoice(world: World) -> None:
    """Stripe is down when the refund arrives: the event stays unprocessed (nothing lost),
    later events still apply, and the inbox applies the refund once Stripe answers."""
    order = await subscribe(world)
    world.stripe.inject("/v1/invoice_payments", status=500, count=None, should_retry=False)
    world.stripe.refund(latest_payment(world, order))
    await world.flush()
    assert (await world.order(order.id)).status == "paid"
    assert world.rows("SELECT status FROM webhook_events WHERE type='charge.refunded'") == [
        ("received",)
    ]
    error = world.rows("SELECT last_error, next_attempt_at FROM webhook_events"
                       " WHERE type='charge.refunded'")[0]  # fmt: skip
    assert error[1] is not None and "Stripe" in error[0]  # waits out a backoff, durably
    other = await buy(world, "pro", user=ADMIN)  # a later purchase is not held up
    assert other.status == "paid"
    world.stripe.clear_faults()
    world.advance(seconds=retry_delay(1).total_seconds())  # the backoff runs out
    task = asyncio.create_task(world.inbox.run())
    try:
        async with asyncio.timeout(10):
            while (await world.order(order.id)).status != "refunded":
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert world.rows("SELECT status FROM webhook_events WHERE type='charge.refunded'") == [
        ("processed",)
    ]


async def test_shop_refund_on_subscription_refunds_and_cancels(world: World) -> None:
    """/shop refund of a subscription order refunds the latest paid invoice's payment and
    cancels the subscription, so it does not renew; the webhooks then end the access."""
    order = await subscribe(world, renewals=1)
    sub_id = str(order.stripe_subscription_id)
    payment = latest_payment(world, order)
    result = await world.services.admin_ops.refund(GUILD, ADMIN, f"#{order.id}", "asked")
    assert result.subscription_canceled and result.order_id == order.id
    assert world.stripe.subscriptions[sub_id]["status"] == "canceled"
    assert world.stripe.refunds[result.refund_id]["payment_intent"] == payment
    assert world.stripe.charges[world.stripe.payment_intents[payment]["latest_charge"]]["refunded"]
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == "refunded"
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("revoked", "refund")]
    assert world.rows("SELECT status FROM subscriptions") == [("canceled",)]
    assert world.discord.roles[BUYER] == set()
    with pytest.raises(Conflict, match="already refunded"):
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "again")


async def test_shop_refund_of_a_trial_refunds_nothing(world: World) -> None:
    """A subscription still in its free trial has no payment: a clear refusal, no change."""
    await add_product(world, "Trial", kind="subscription", interval="month", trial_days=7)
    order = await buy(world, "trial")
    with pytest.raises(Conflict, match="not reported a paid invoice"):
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "")
    assert world.stripe.subscriptions[str(order.stripe_subscription_id)]["status"] == "trialing"
    assert world.stripe.refunds == {}


async def test_shop_refund_when_stripe_will_not_cancel_refunds_nothing(world: World) -> None:
    """Stripe refuses the cancellation: the admin is told so and nothing was refunded; once
    it works, running /shop refund again finishes both."""
    order = await subscribe(world)
    world.stripe.inject("/v1/subscriptions/", status=400, error_type="invalid_request_error")
    with pytest.raises(PaymentError) as caught:
        await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "")
    assert "Stripe refused to cancel the subscription" in caught.value.user_message
    assert "Nothing was refunded" in caught.value.user_message
    assert world.stripe.refunds == {}
    result = await world.services.admin_ops.refund(GUILD, ADMIN, str(order.id), "")
    assert result.subscription_canceled and result.refund_id in world.stripe.refunds
