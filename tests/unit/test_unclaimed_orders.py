"""Issue 11: a paid web order nobody has claimed shows its code in /shop orders, and once it
has waited longer than shop.claim_expiry_hours, what the admin can do about it."""

from __future__ import annotations

from datetime import timedelta

from bot.models import NO_BUYER
from cogs._reports import order_line
from tests.unit.world import GUILD, World, add_product, buy


async def test_unclaimed_web_order_is_shown_with_its_code_and_age(world: World) -> None:
    product_id = await add_product(world, "gold")
    async with world.store.transaction() as tx:
        order = await tx.orders.create(
            guild_id=GUILD, buyer_id=NO_BUYER, recipient_id=None,
            product_id=product_id, amount=499, currency="usd",
        )  # fmt: skip
        await tx.orders.update(
            order.id, status="paid", claim_code="ABCD-EFGH-JKLM-NPQR", paid_at=tx.now
        )
    order = await world.order(order.id)
    expiry = timedelta(hours=72)
    fresh = order_line(order, "Gold", "paid", world.clock.now() + timedelta(hours=1), expiry)
    assert "unclaimed (code `ABCD-EFGH-JKLM-NPQR`)" in fresh and "refund" not in fresh
    late = order_line(order, "Gold", "paid", world.clock.now() + timedelta(hours=73), expiry)
    assert "for over 72 h: refund it or find the buyer" in late
    assert "<@0>" not in late

    claimed = await buy(world, "gold")
    line = order_line(claimed, "Gold", "paid", world.clock.now() + timedelta(days=9), expiry)
    assert f"<@{claimed.recipient_id}>" in line and "unclaimed" not in line
