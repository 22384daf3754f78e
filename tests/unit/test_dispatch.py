"""The webhook dispatcher (bot/billing/): one table from event type to handler."""

from __future__ import annotations

from tests.unit.world import BUYER, ROLE, World, add_product, buy

#: SPEC §6, the events shopbot acts on.
SPEC_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
}


async def test_the_table_covers_exactly_the_events_of_the_spec(world: World) -> None:
    dispatcher = world.domain.dispatcher
    assert set(dispatcher.event_types) == SPEC_EVENTS
    handlers = {
        event: type(getattr(handler, "__self__")).__name__  # noqa: B009 - a bound method
        for event, handler in dispatcher.handlers.items()
    }
    assert {handlers[e] for e in SPEC_EVENTS if e.startswith("checkout.")} == {"CheckoutEvents"}
    assert {handlers["charge.refunded"], handlers["charge.dispute.created"]} == {"RefundEvents"}
    assert (
        handlers["invoice.paid"]
        == handlers["customer.subscription.deleted"]
        == ("SubscriptionEvents")
    )


async def test_an_event_nobody_handles_is_ignored_and_changes_nothing(world: World) -> None:
    event = world.stripe.make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert await world.deliver(event) is True
    assert world.rows("SELECT status, order_id FROM webhook_events") == [("ignored", None)]
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs") == [(0,)]


async def test_a_refund_takes_the_role_away_through_one_planned_revocation(world: World) -> None:
    """charge.refunded → order refunded → Access.end(REFUND) → Planner.revocations → job."""
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    world.stripe.refund(world.stripe.sessions[order.stripe_session_id]["payment_intent"])
    await world.flush()
    assert (await world.order(order.id)).status == "refunded"
    ((entitlement_id,),) = world.rows("SELECT id FROM entitlements")
    revokes = world.rows("SELECT dedupe_key FROM delivery_jobs WHERE kind='revoke_role'")
    assert revokes == [(f"entitlement:{entitlement_id}:revoke:role:{ROLE}",)]
    await world.run_jobs()
    assert world.discord.roles[BUYER] == set()
    await world.flush()  # nothing new; a replay of the same refund plans nothing more
    event = next(e for e in world.stripe.events.values() if e["type"] == "charge.refunded")
    await world.deliver({**event, "id": event["id"] + "_again"})
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs WHERE kind='revoke_role'") == [(1,)]
