"""/purchases shows each item's true state: delivery, and how the access goes on."""

from __future__ import annotations

from datetime import timedelta

from bot.shop import ProductDraft
from cogs._ui import purchases_embed
from tests.unit.world import ADMIN, BUYER, GUILD, ROLE, World, buy, period_end


async def product(world: World, name: str, **extra: object) -> None:
    draft = ProductDraft(name=name, price="4.99", role_id=ROLE, **extra)  # type: ignore[arg-type]
    await world.shop.add_product(GUILD, ADMIN, draft)


async def states(world: World) -> list[tuple[str, str, str]]:
    result = await world.members.purchases(GUILD, BUYER)
    return [(h.name, h.delivery, h.access) for h in result.holdings]


def shown(world_purchases: object) -> str:
    embed = purchases_embed(world_purchases)  # type: ignore[arg-type]
    return "\n".join(f"{f.name} {f.value}" for f in embed.fields) + (embed.description or "")


async def test_purchases_true_state_delivered_forever(world: World) -> None:
    """A one-off product whose role was given: delivered, yours for good."""
    await product(world, "Pass")
    await buy(world, "pass")
    await world.run_jobs()
    assert await states(world) == [("Pass", "delivered", "forever")]
    text = shown(await world.members.purchases(GUILD, BUYER))
    assert "**Pass** — delivered · yours for good" in text and "forever" not in text


async def test_purchases_true_state_failed_grant_is_not_active_forever(world: World) -> None:
    """The grant failed (Discord refused): the item says so and that admins were told."""
    await product(world, "Pass")
    world.discord.refuse.add(BUYER)
    await buy(world, "pass")
    await world.run_jobs()
    assert await states(world) == [("Pass", "failed", "forever")]
    text = shown(await world.members.purchases(GUILD, BUYER))
    assert "delivery failed — the admins have been told" in text
    assert "until forever" not in text


async def test_purchases_true_state_delivering_while_member_away(world: World) -> None:
    """The grant waits (member not there): being delivered."""
    await product(world, "Pass")
    world.discord.absent.add(BUYER)
    await buy(world, "pass")
    await world.run_jobs()
    assert await states(world) == [("Pass", "delivering", "forever")]


async def test_purchases_true_state_timed_expires_on(world: World) -> None:
    """Timed access: expires on its end date."""
    await product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    await world.run_jobs()
    result = await world.members.purchases(GUILD, BUYER)
    (item,) = result.holdings
    assert (item.access, item.until) == ("expires", world.clock.now() + timedelta(days=7))
    assert "expires on <t:" in shown(result)


async def test_purchases_true_state_subscription_renews_cancels_and_payment_fails(
    world: World,
) -> None:
    """Renews on the period end; set to cancel → cancels on; a failed renewal → payment
    failed with the time access lasts until (never just "active")."""
    await product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id
    assert sub_id is not None
    await world.run_jobs()
    result = await world.members.purchases(GUILD, BUYER)
    (item,) = result.holdings
    assert (item.delivery, item.access, item.until) == (
        "delivered",
        "renews",
        period_end(world, sub_id),
    )
    assert "renews on <t:" in shown(result)

    world.stripe.cancel_subscription(sub_id, at_period_end=True)
    await world.flush()
    result = await world.members.purchases(GUILD, BUYER)
    assert [(h.access, h.until) for h in result.holdings] == [
        ("cancels", period_end(world, sub_id))
    ]
    assert "cancels on <t:" in shown(result)

    world.stripe.update_subscription(sub_id, cancel_at_period_end=False)
    await world.flush()
    world.advance(days=31)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    result = await world.members.purchases(GUILD, BUYER)
    (item,) = result.holdings
    async with world.store.reading() as tx:
        entitlement = (await tx.entitlements.active_of_member(GUILD, BUYER))[0]
    assert (item.access, item.until) == ("payment_failed", entitlement.ends_at)
    assert "payment failed — access until <t:" in shown(result)


async def test_purchases_true_state_trial_until(world: World) -> None:
    """A subscription in its free trial: trial until the trial's end."""
    await product(world, "Pro", kind="subscription", interval="month", trial_days=7)
    order = await buy(world, "pro")
    assert order.stripe_subscription_id is not None
    await world.run_jobs()
    result = await world.members.purchases(GUILD, BUYER)
    (item,) = result.holdings
    assert item.access == "trial"
    assert item.until == period_end(world, order.stripe_subscription_id)
    assert "free trial until <t:" in shown(result)


async def test_purchases_true_state_hides_checkouts_past_their_link_life(world: World) -> None:
    """An open checkout is listed while its link works; once the link's life is over it is
    not, even before the expiry loop has closed it."""
    await product(world, "Pass")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "pass")
    result = await world.members.purchases(GUILD, BUYER)
    assert [o.id for o, _ in result.orders] == [order.id]
    assert "waiting for payment (the link works until <t:" in shown(result)
    assert order.checkout_expires_at is not None
    world.advance(seconds=(order.checkout_expires_at - world.clock.now()).total_seconds() + 1)
    result = await world.members.purchases(GUILD, BUYER)
    assert result.orders == [] and result.holdings == []
    assert "You have not bought anything here yet" in shown(result)
