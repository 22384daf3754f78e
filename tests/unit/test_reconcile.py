"""The reconciler (bot/reconcile.py) against the recording Discord port: compares the member
list with the database, page by page, and queues only the fixes the ledger allows."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.reconcile import Reconciler
from tests.unit.world import BUYER, GUILD, OTHER, ROLE, World, add_product, buy

HAND_GIVEN = 777


async def members(world: World, extra: int = 0) -> AsyncIterator[tuple[int, frozenset[int]]]:
    for user_id in (BUYER, OTHER):
        yield user_id, frozenset(world.discord.roles[user_id])
    for n in range(extra):
        yield 10_000 + n, frozenset()


def reconciler(world: World) -> Reconciler:
    return world.services.reconciler


async def test_a_missing_role_is_given_back_once(world: World) -> None:
    await add_product(world, "Gold")
    await buy(world, "gold")
    await world.run_jobs()
    world.advance(minutes=5)
    world.discord.roles[BUYER].clear()  # removed by hand while the bot was down
    report = await reconciler(world).reconcile(GUILD, members(world, extra=2_500))
    assert (report.members_seen, report.granted, report.revoked) == (2_502, 1, 0)
    again = await reconciler(world).reconcile(GUILD, members(world))
    assert again.granted == 0  # the first fix is still queued
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}


async def test_an_ended_role_the_bot_gave_is_taken_back_but_not_one_given_by_hand(
    world: World,
) -> None:
    await add_product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    await world.run_jobs()
    world.advance(minutes=5)
    world.discord.roles[OTHER] = {ROLE, HAND_GIVEN}  # the same role, given by an admin
    async with world.store.transaction() as tx:  # access ended, but its revoke was lost
        (entitlement,) = await tx.entitlements.active_of_member(GUILD, BUYER)
        await tx.entitlements.set_end(
            entitlement.id, "expired", "expired", expected=("active", None)
        )
    report = await reconciler(world).reconcile(GUILD, members(world))
    assert (report.granted, report.revoked) == (0, 1)
    await world.run_jobs()
    assert world.discord.roles[BUYER] == set()
    assert world.discord.roles[OTHER] == {ROLE, HAND_GIVEN}


async def test_nothing_to_fix_queues_nothing(world: World) -> None:
    await add_product(world, "Gold")
    await buy(world, "gold")
    await world.run_jobs()
    report = await reconciler(world).reconcile(GUILD, members(world))
    assert (report.granted, report.revoked) == (0, 0)
    assert world.rows("SELECT COUNT(*) FROM delivery_jobs WHERE status='pending'") == [(0,)]


async def test_reconcile_wakes_parked_jobs_of_members_it_sees(world: World) -> None:
    """Issue 9 item 4: the buyer joined while the gateway re-identified (GUILD_MEMBER_ADD
    lost); the reconcile at READY sees them in the list and wakes the parked grant."""
    await add_product(world, "Gold")
    world.discord.absent.add(BUYER)
    await buy(world, "gold")
    await world.run_jobs()
    assert world.rows("SELECT waiting_for_member FROM delivery_jobs") == [(1,)]
    world.discord.absent.discard(BUYER)  # joined; the bot never heard of it
    world.advance(minutes=5)
    report = await reconciler(world).reconcile(GUILD, members(world))
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    assert report.woken == 1
    assert world.rows("SELECT kind, status FROM delivery_jobs ORDER BY id") == [
        ("grant_role", "completed"),
        ("receipt", "completed"),
    ]


async def test_reconcile_leaves_jobs_of_members_in_screening_parked(world: World) -> None:
    await add_product(world, "Gold")
    world.discord.absent.add(BUYER)
    await buy(world, "gold")
    await world.run_jobs()
    world.discord.absent.discard(BUYER)
    await world.members.member_joined(GUILD, BUYER, pending=True)
    report = await reconciler(world).reconcile(GUILD, members(world))
    assert report.woken == 0
    assert world.rows("SELECT waiting_for_member FROM delivery_jobs") == [(1,)]
