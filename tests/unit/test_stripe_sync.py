"""Issue 9 item 3: webhooks lost for good are recovered at start, and subscription drift is
fixed periodically — without an operator running `events replay`."""

from __future__ import annotations

from tests.unit.world import BUYER, GUILD, ROLE, World, add_product, buy


async def apply_due(world: World) -> None:
    async with world.store.reading() as tx:
        due = await tx.events.unprocessed()
    for stored in due:
        await world.inbox.process(stored.id, stored.payload)


async def test_missed_webhooks_recovered_at_start(world: World) -> None:
    """A payment whose webhooks never arrived is applied by the start-up catch-up, once."""
    sync = world.services.stripe_sync
    await add_product(world, "gold")
    first = await buy(world, "gold")  # delivered: the newest event we hold
    await world.run_jobs()
    world.advance(days=4)  # down longer than Stripe retries
    order, _ = await world.shop.start_checkout(GUILD, 7, "gold")
    world.stripe.complete_checkout(order.stripe_session_id)  # never delivered to us

    listed, fresh = await sync.catch_up()
    assert fresh == 1 and listed >= 1
    await apply_due(world)
    assert (await world.order(order.id)).status == "paid"
    await world.run_jobs()
    assert ROLE in world.discord.roles[7]
    assert (await sync.catch_up())[1] == 0  # a second start applies nothing twice
    assert world.rows("SELECT COUNT(*) FROM entitlements") == [(2,)]
    assert first.status == "paid"


async def test_catch_up_looks_back_at_most_30_days(world: World) -> None:
    """Listing starts a day before the newest event held, bounded by Stripe's 30 days."""
    sync = world.services.stripe_sync
    first_start = await sync.since()
    assert (world.clock.now() - first_start).days == 1  # before the first start: a day
    await add_product(world, "gold")
    await buy(world, "gold")
    world.advance(days=2)
    newest = world.rows("SELECT MAX(created) FROM webhook_events")[0][0]
    assert int((await sync.since()).timestamp()) == newest - 86400
    world.advance(days=90)
    assert (world.clock.now() - await sync.since()).days == 29  # Stripe keeps 30 days


async def test_subscription_drift_is_fixed(world: World) -> None:
    """Stripe says canceled (its event lost): the drift check ends access here, once."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id
    assert sub_id is not None
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}

    world.stripe.cancel_subscription(sub_id)  # the deletion webhook never arrives
    sync = world.services.stripe_sync
    assert await sync.check_subscriptions() == 1
    assert world.rows("SELECT status FROM subscriptions") == [("canceled",)]
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("expired", "canceled")]
    await world.run_jobs()
    assert world.discord.roles[BUYER] == set()
    assert await sync.check_subscriptions() == 0  # nothing active is left to ask about
    await world.flush()  # the late webhook changes nothing more
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("expired", "canceled")]
    assert world.rows("SELECT kind FROM audit_log WHERE kind='subscription.drift'") == [
        ("subscription.drift",)
    ]


async def test_subscription_in_step_is_left_alone(world: World) -> None:
    """No drift: Stripe is asked, nothing is written."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    await buy(world, "pro")
    before = world.rows("SELECT * FROM subscriptions")
    assert await world.services.stripe_sync.check_subscriptions() == 0
    assert world.rows("SELECT * FROM subscriptions") == before
