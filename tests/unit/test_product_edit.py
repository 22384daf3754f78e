"""`/shop product edit` changes the role new buyers get, the image and promotion codes."""

from __future__ import annotations

import pytest

from bot.errors import InvalidInput
from tests.unit.world import ADMIN, BUYER, GUILD, OTHER, ROLE, World, add_product, buy

NEW_ROLE = 777


async def test_product_edit_changes_role_image_and_promotion_codes(world: World) -> None:
    """The new role goes to new buyers (the old grant action is replaced, its revoke_on
    kept); image_url and allow_promotion_codes are stored; a bad image URL changes nothing."""
    product_id = await add_product(world, "Gold")
    await buy(world, "gold")
    await world.run_jobs()
    edited = await world.shop.edit_product(
        GUILD,
        ADMIN,
        str(product_id),
        role_id=NEW_ROLE,
        image_url=" https://img.example/gold.png ",
        allow_promotion_codes=True,
    )
    assert edited.image_url == "https://img.example/gold.png" and edited.allow_promotion_codes
    assert await world.shop.product_roles(product_id) == [NEW_ROLE]
    await buy(world, "gold", user=OTHER)
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE} and world.discord.roles[OTHER] == {NEW_ROLE}
    with pytest.raises(InvalidInput, match="https://"):
        await world.shop.edit_product(GUILD, ADMIN, str(product_id), image_url="javascript:x")
    unchanged = await world.shop.resolve_product(GUILD, str(product_id))
    assert unchanged.image_url == "https://img.example/gold.png"
