"""/claim codes: unguessable, one answer for codes that are not yours, a durable attempt limit."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from bot.errors import InvalidInput, NotFound, ShopError
from bot.membership import normalize_code
from bot.models import Order
from bot.services import build_services
from bot.shop import CLAIM_ALPHABET, new_claim_code
from bot.store import Store
from tests.unit.world import BUYER, GUILD, OTHER, World, add_product, buy

THIRD = 4
ATTEMPTS = 5  # wrong codes per user in 15 minutes
CODE = re.compile(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}")


async def unclaimed_paid_order(world: World, session_id: str = "cs_test_outside") -> Order:
    """A paid order nobody holds yet (bought outside Discord): its code is the way in."""
    product_id = await add_product(world, f"Gold {session_id}")
    async with world.store.transaction() as tx:
        order = await tx.orders.create(
            guild_id=GUILD,
            buyer_id=BUYER,
            recipient_id=None,
            product_id=product_id,
            amount=499,
            currency="usd",
        )
        await tx.orders.update(order.id, stripe_session_id=session_id)
    session = {
        "id": session_id,
        "client_reference_id": str(order.id),
        "payment_status": "paid",
        "amount_total": 499,
        "currency": "usd",
    }
    await world.deliver(world.stripe.make_event("checkout.session.completed", session))
    return await world.order(order.id)


def wrong_code(n: int, legacy: bool = True) -> str:
    """A well-formed code that no order has (by default of the old 8-symbol form, which is
    still accepted and so counts like any other)."""
    if legacy:
        return f"ZZZZ-ZZ{CLAIM_ALPHABET[n] * 2}"
    return f"ZZZZ-ZZZZ-ZZZZ-{CLAIM_ALPHABET[n] * 4}"


async def test_claim_code_has_64_bits(world: World) -> None:
    """Codes are 16 symbols of a 32-symbol alphabet (80 bits), every symbol used, in typeable
    groups; a paid order gets one; what a user types back (any case, spaces) finds it."""
    assert len(set(CLAIM_ALPHABET)) == 32
    codes = [new_claim_code() for _ in range(2000)]
    assert all(CODE.fullmatch(code) for code in codes), codes[:3]
    bits = len(codes[0].replace("-", "")) * math.log2(len(CLAIM_ALPHABET))
    assert bits >= 64
    assert len(set(codes)) == len(codes)
    symbols = Counter("".join(codes).replace("-", ""))
    assert set(symbols) == set(CLAIM_ALPHABET)  # no symbol left out: the full 5 bits each
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    assert order.claim_code is not None and CODE.fullmatch(order.claim_code)
    typed = order.claim_code.lower().replace("-", " ")
    assert normalize_code(typed) == order.claim_code


async def test_legacy_claim_code_still_works(world: World) -> None:
    """A code of the old 8-symbol form, issued before, still claims its order."""
    order = await unclaimed_paid_order(world)
    async with world.store.transaction() as tx:
        await tx.orders.update(order.id, claim_code="ABCD-EF23")
    message = await world.members.claim(GUILD, OTHER, "abcd ef23")
    assert "now yours" in message
    assert world.rows("SELECT user_id FROM entitlements") == [(OTHER,)]
    with pytest.raises(InvalidInput, match="ABCD-EFGH-JKLM-NPQR"):
        await world.members.claim(GUILD, OTHER, "ABCD-EF2")


async def test_claim_unknown_and_foreign_code_same_answer(world: World) -> None:
    """No such code, another guild's code, and a code someone else already holds get the same
    refusal (no oracle for which codes exist); none of them changes the order."""
    order = await unclaimed_paid_order(world)
    assert order.claim_code is not None
    await world.members.claim(GUILD, OTHER, order.claim_code)  # OTHER holds it now
    answers = []
    for guild, user, code in [
        (GUILD, BUYER, wrong_code(0)),  # no such code
        (GUILD, THIRD, order.claim_code),  # someone else's
        (GUILD + 1, 5, order.claim_code),  # another guild's
        (GUILD, 6, wrong_code(0, legacy=False)),  # no such code, of the new form
    ]:
        with pytest.raises(NotFound) as refused:
            await world.members.claim(guild, user, code)
        answers.append(refused.value.user_message)
    assert len(set(answers)) == 1, answers
    assert "already" not in answers[0] and "claimed" not in answers[0]
    assert (await world.order(order.id)).recipient_id == OTHER
    assert world.rows("SELECT user_id FROM entitlements") == [(OTHER,)]


async def test_claim_attempt_limit(world: World) -> None:
    """Five wrong codes in 15 minutes lock /claim for that user, across a restart, on our clock:
    even the right code is then refused and changes nothing; others are not affected; once
    the window has passed the right code works."""
    order = await unclaimed_paid_order(world)
    assert order.claim_code is not None
    for n in range(ATTEMPTS - 1):
        with pytest.raises(NotFound, match=f"{ATTEMPTS - 1 - n} more tr"):
            await world.members.claim(GUILD, THIRD, wrong_code(n))
        world.advance(minutes=1)
    with pytest.raises(ShopError, match="try again in 15 minutes"):
        await world.members.claim(GUILD, THIRD, wrong_code(9, legacy=False))
    recorded = world.rows("SELECT COUNT(*) FROM claim_attempts")

    # A restart: a new store and services on the same file.
    store = Store(world.settings.database.path, world.clock, url=world.settings.database.url_value)
    await store.open()
    try:
        members = build_services(
            world.settings, store, world.shop.payments, world.clock, world.discord
        ).members
        world.advance(minutes=10)  # the first wrong code was 14 minutes ago
        with pytest.raises(ShopError, match=r"Too many wrong claim codes; try again in 1 minute\."):
            await members.claim(GUILD, THIRD, order.claim_code)
        assert world.rows("SELECT COUNT(*) FROM claim_attempts") == recorded  # nothing counted
        assert (await world.order(order.id)).recipient_id is None
        assert world.rows("SELECT COUNT(*) FROM entitlements") == [(0,)]
        with pytest.raises(NotFound, match="4 more tries"):  # another user is not locked
            await members.claim(GUILD, OTHER, wrong_code(1))
        world.advance(minutes=1, seconds=1)  # one wrong code has left the window
        assert "now yours" in await members.claim(GUILD, THIRD, order.claim_code)
    finally:
        await store.close()
    assert world.rows("SELECT user_id FROM entitlements") == [(THIRD,)]
