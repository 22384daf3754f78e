"""Gifts (SPEC §4): the entitlement goes to the recipient, and both members are told, once."""

from __future__ import annotations

from tests.unit.world import BUYER, GUILD, OTHER, ROLE, World, add_product


async def test_gift_recipient_is_told(world: World) -> None:
    """A paid gift DMs the recipient once (product and buyer named), also under a duplicate
    event and a second planning of the receipt; the buyer gets their receipt once."""
    await add_product(world, "Gold")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold", gift_to=OTHER)
    event = world.stripe.complete_checkout(order.stripe_session_id)
    assert await world.deliver(event) is True
    assert await world.deliver(event) is False  # Stripe delivers it again
    await world.run_jobs()
    async with world.store.transaction() as tx:  # any later path asking for the receipt
        paid = await tx.orders.get(order.id)
        assert paid is not None
        assert await world.planner.receipt(tx, paid) == 0
    await world.run_jobs()

    assert world.discord.roles[OTHER] == {ROLE} and not world.discord.roles[BUYER]
    to_recipient = [text for user, text in world.discord.dms if user == OTHER]
    to_buyer = [text for user, text in world.discord.dms if user == BUYER]
    assert len(to_recipient) == 1, world.discord.dms
    assert "**Gold**" in to_recipient[0] and f"<@{BUYER}>" in to_recipient[0]
    assert "gift" in to_recipient[0]
    assert paid.claim_code not in to_recipient[0]  # the order is already theirs
    assert len(to_buyer) == 1 and f"gift for <@{OTHER}>" in to_buyer[0]
    keys = world.rows("SELECT kind, user_id, dedupe_key, status FROM delivery_jobs ORDER BY id")
    assert keys[1:] == [
        ("receipt", BUYER, f"order:{order.id}:receipt", "completed"),
        ("gift", OTHER, f"order:{order.id}:gift", "completed"),
    ]


async def test_own_purchase_sends_no_gift_notice(world: World) -> None:
    """Buying for yourself: one receipt, no gift DM."""
    await add_product(world, "Gold")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id))
    await world.run_jobs()
    assert [user for user, _ in world.discord.dms] == [BUYER]
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs WHERE kind='gift'") == [(0,)]


async def test_gift_notice_names_a_failed_delivery(world: World) -> None:
    """When the gift's role cannot be given, the recipient is told it is not delivered yet."""
    await add_product(world, "Gold")
    world.discord.refuse.add(OTHER)
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold", gift_to=OTHER)
    await world.deliver(world.stripe.complete_checkout(order.stripe_session_id))
    await world.run_jobs()
    to_recipient = [text for user, text in world.discord.dms if user == OTHER]
    assert len(to_recipient) == 1 and "could not be delivered yet" in to_recipient[0]
