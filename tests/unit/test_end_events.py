"""`entitlement.end` audit rows carry the Stripe event behind them, so `/shop why` can name it."""

from __future__ import annotations

import json

from tests.unit.world import World, add_product, buy


def end_events(world: World) -> list[tuple[str, str | None]]:
    rows = world.rows("SELECT detail FROM audit_log WHERE kind='entitlement.end' ORDER BY id")
    return [(json.loads(d)["reason"], json.loads(d).get("event_id")) for (d,) in rows]


def event_ids(world: World, type_: str) -> set[str]:
    return {row[0] for row in world.rows(f"SELECT id FROM webhook_events WHERE type='{type_}'")}


async def test_entitlement_end_audit_carries_the_stripe_event_of_refund_and_cancel(
    world: World,
) -> None:
    """A refund's and a cancellation's `entitlement.end` rows name the Stripe event: the
    refund event, and the subscription event that first reported the end."""
    await add_product(world, "Gold")
    await add_product(world, "Pro", kind="subscription", interval="month")
    gold = await buy(world, "gold")
    pro = await buy(world, "pro")
    await world.run_jobs()
    world.stripe.refund(str(gold.stripe_payment_intent_id))
    await world.flush()
    world.stripe.cancel_subscription(str(pro.stripe_subscription_id))
    await world.flush()
    ends = dict(end_events(world))
    assert ends["refund"] in event_ids(world, "charge.refunded")
    ended_by = world.rows(
        "SELECT json_extract(detail, '$.event_id') FROM audit_log"
        " WHERE kind='subscription.status' AND json_extract(detail, '$.ended_at') IS NOT NULL"
    )
    assert [(ends["canceled"],)] == ended_by[:1]
