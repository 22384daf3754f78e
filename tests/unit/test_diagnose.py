"""Issue 9 item 14: /shop diagnose shows each guild only its own figures."""

from __future__ import annotations

from tests.unit.world import BUYER, GUILD, World, add_product, buy

OTHER_GUILD = 200


async def test_diagnose_figures_are_per_guild(world: World) -> None:
    """A failed event and the last webhook of one guild do not show in another's diagnose."""
    await add_product(world, "gold")
    order = await buy(world, "gold")
    forged = {  # authentic-looking but not the order's session: can never apply
        "id": "cs_not_the_one", "object": "checkout.session", "mode": "payment",
        "client_reference_id": f"{world.store.install_id}-{order.id}", "payment_status": "paid",
        "metadata": {"guild_id": str(GUILD), "order_id": str(order.id), "user_id": str(BUYER)},
    }  # fmt: skip
    await world.deliver(world.stripe.make_event("checkout.session.completed", forged))
    assert world.rows("SELECT COUNT(*) FROM webhook_events WHERE status='failed'") == [(1,)]

    mine = await world.services.reports.problems(GUILD)
    assert mine.failed_events == 1 and mine.last_webhook is not None
    theirs = await world.services.reports.problems(OTHER_GUILD)
    assert (theirs.failed_events, theirs.last_webhook, theirs.failed_jobs) == (0, None, 0)
