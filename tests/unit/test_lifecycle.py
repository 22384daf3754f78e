"""Access lifecycle: renewals, grace, cancellation, refunds, disputes, expiry and revocation."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.clock import iso
from bot.inbox import Inbox
from bot.lifecycle import run_expiry
from bot.services import build_domain
from bot.store import Store
from tests.unit.world import (
    BUYER,
    GUILD,
    OTHER,
    ROLE,
    World,
    add_message,
    add_product,
    buy,
    make_settings,
    period_end,
)


async def test_timed_access_expires_and_the_role_is_taken_back(world: World) -> None:
    """Timed access: role granted, then after ends_at expire_due revokes it and DMs the member."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    assert world.rows("SELECT status FROM role_grants") == [("granted",)]
    world.advance(days=6, hours=23)
    assert await world.expire() == 0
    world.advance(hours=1, minutes=1)
    assert await world.expire() == 1
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("expired", "expired")]
    assert world.rows(
        "SELECT kind, status FROM delivery_jobs WHERE kind IN ('revoke_role', 'notice')"
    ) == [("revoke_role", "pending"), ("notice", "pending")]
    await world.run_jobs()
    assert ("remove", BUYER, ROLE) in world.discord.calls
    assert world.discord.roles[BUYER] == set()
    assert any("**Week** has ended" in text for user, text in world.discord.dms if user == BUYER)
    assert world.rows("SELECT status FROM role_grants") == [("revoked",)]
    assert await world.expire() == 0


async def test_subscription_renews_keeps_access_in_grace_and_ends_on_cancel(world: World) -> None:
    """invoice.paid moves ends_at; a failed renewal keeps access through grace; deletion ends it."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id
    assert sub_id is not None
    await world.run_jobs()
    first_end = period_end(world, sub_id)
    assert world.rows("SELECT ends_at FROM entitlements") == [(iso(first_end),)]

    world.advance(days=31)
    world.stripe.renew_subscription(sub_id)
    await world.flush()
    second_end = period_end(world, sub_id)
    assert second_end > first_end
    ends = world.rows("SELECT status, ends_at FROM entitlements")
    assert ends == [("active", iso(second_end))]

    world.advance(days=28)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    assert world.rows("SELECT status, ends_at FROM entitlements") == ends  # not extended
    world.advance(hours=12)  # past period end, inside the 24 h grace
    assert await world.expire() == 0
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    assert any("payment for your **Pro**" in text for _, text in world.discord.dms)

    world.stripe.cancel_subscription(sub_id)
    await world.flush()
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("expired", "canceled")]
    await world.run_jobs()
    assert ("remove", BUYER, ROLE) in world.discord.calls
    assert world.discord.roles[BUYER] == set()
    assert world.rows("SELECT status FROM subscriptions") == [("canceled",)]


async def test_lapsed_subscription_comes_back_when_the_retry_is_paid(world: World) -> None:
    """Past grace the role goes; a later successful retry restores access and the role."""
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "pro")
    sub_id = order.stripe_subscription_id
    assert sub_id is not None
    await world.run_jobs()
    world.advance(days=31)
    world.stripe.fail_invoice(sub_id)
    await world.flush()
    world.advance(hours=25)
    assert await world.expire() == 1
    await world.run_jobs()
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("expired", "lapsed")]
    assert world.discord.roles[BUYER] == set()

    world.stripe.pay_invoice(world.stripe.subscriptions[sub_id]["latest_invoice"])
    await world.flush()
    assert world.rows("SELECT status, cycle, ends_at FROM entitlements") == [
        ("active", 1, iso(period_end(world, sub_id)))
    ]
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}


@pytest.mark.parametrize(
    ("how", "order_status", "entitlement", "removed", "message"),
    [
        ("refund", "refunded", ("revoked", "refund"), True, "sorry to see you go"),
        ("dispute", "disputed", ("revoked", "chargeback"), True, "chargeback noted"),
        ("partial", "paid", ("active", None), False, None),
    ],
)
async def test_refund_and_dispute_take_the_role_back_partial_refund_does_not(
    world: World,
    how: str,
    order_status: str,
    entitlement: tuple[str, str | None],
    removed: bool,
    message: str | None,
) -> None:
    """Full refund and dispute revoke access and run their stage; a partial refund does not."""
    gold = await add_product(world, "Gold")
    await add_message(world, gold, "on_refund", "sorry to see you go")
    await add_message(world, gold, "on_chargeback", "chargeback noted")
    order = await buy(world, "gold")
    await world.run_jobs()
    assert world.discord.roles[BUYER] == {ROLE}
    pi = order.stripe_payment_intent_id
    assert pi is not None
    if how == "refund":
        world.stripe.refund(pi)
    elif how == "dispute":
        world.stripe.dispute(pi)
    else:
        world.stripe.refund(pi, amount=100)
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == order_status
    assert world.rows("SELECT status, end_reason FROM entitlements") == [entitlement]
    assert (("remove", BUYER, ROLE) in world.discord.calls) is removed
    texts = [text for _, text in world.discord.dms]
    assert (message in texts) if message else not any("sorry" in t for t in texts)
    if how == "partial":
        assert world.rows("SELECT kind FROM audit_log WHERE kind='order.partial_refund'") == [
            ("order.partial_refund",)
        ]


async def test_shared_role_survives_refund_of_one_product(world: World) -> None:
    """Two products grant the same role: refunding one keeps it; the other's expiry removes it."""
    await add_product(world, "Gold")
    await add_product(world, "Week", kind="timed", duration_days=7)
    gold = await buy(world, "gold")
    await buy(world, "week")
    await world.run_jobs()
    world.stripe.refund(str(gold.stripe_payment_intent_id))
    await world.flush()
    await world.run_jobs()
    assert ("remove", BUYER, ROLE) not in world.discord.calls
    assert world.discord.roles[BUYER] == {ROLE}
    world.advance(days=8)
    assert await world.expire() == 1
    await world.run_jobs()
    assert ("remove", BUYER, ROLE) in world.discord.calls
    assert world.rows("SELECT DISTINCT status FROM role_grants") == [("revoked",)]


async def test_revoke_rechecks_other_entitlements_when_it_runs(world: World) -> None:
    """A revoke queued before the member bought another product with the role removes nothing."""
    await add_product(world, "Gold")
    await add_product(world, "Week", kind="timed", duration_days=7)
    gold = await buy(world, "gold")
    await world.run_jobs()
    world.stripe.refund(str(gold.stripe_payment_intent_id))
    await world.flush()
    assert world.rows("SELECT status FROM delivery_jobs WHERE kind='revoke_role'") == [("pending",)]
    await buy(world, "week")
    await world.run_jobs()
    assert ("remove", BUYER, ROLE) not in world.discord.calls
    assert world.discord.roles[BUYER] == {ROLE}
    assert world.rows("SELECT status FROM delivery_jobs WHERE kind='revoke_role'") == [
        ("completed",)
    ]


async def test_role_given_by_hand_is_never_removed(world: World) -> None:
    """Without a ledger row (the bot never gave the role) neither refund nor expiry removes it."""
    world.discord.roles[BUYER].add(ROLE)  # an admin gave it
    await add_product(world, "Gold")
    await add_product(world, "Week", kind="timed", duration_days=7)
    gold = await buy(world, "gold")
    world.stripe.refund(str(gold.stripe_payment_intent_id))  # before the worker ran
    await world.flush()
    await buy(world, "week")
    world.advance(days=8)
    await world.run_jobs()  # the week's grant finds the role there and records no ledger row
    assert world.rows("SELECT COUNT(*) FROM role_grants") == [(0,)]
    assert await world.expire() == 1
    await world.run_jobs()
    assert [call for call in world.discord.calls if call[0] == "remove"] == []
    assert world.discord.roles[BUYER] == {ROLE}
    assert world.rows("SELECT status, COUNT(*) FROM delivery_jobs WHERE kind='revoke_role'") == [
        ("completed", 2)
    ]
    assert world.rows("SELECT COUNT(*) FROM audit_log WHERE kind='role.kept'") == [(2,)]


async def test_revoke_for_a_member_who_left_completes(world: World) -> None:
    """Unknown Member on removal: the member took no role with them, so the revoke is done."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    await world.run_jobs()
    world.discord.absent.add(BUYER)
    world.advance(days=8)
    await world.expire()
    await world.run_jobs()
    assert world.rows("SELECT status FROM delivery_jobs WHERE kind='revoke_role'") == [
        ("completed",)
    ]
    assert world.rows("SELECT status FROM role_grants") == [("revoked",)]


async def test_refund_before_completed_never_grants(world: World) -> None:
    """charge.refunded processed before checkout.session.completed: the role is never given."""
    await add_product(world, "Gold")
    order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    world.stripe.complete_checkout(order.stripe_session_id)
    pi = world.stripe.sessions[order.stripe_session_id]["payment_intent"]
    refunded = world.stripe.refund(pi)
    await world.deliver(refunded)
    await world.flush()
    await world.run_jobs()
    assert (await world.order(order.id)).status == "refunded"
    assert world.rows("SELECT status, end_reason FROM entitlements") == [("revoked", "refund")]
    assert world.rows("SELECT status FROM delivery_jobs WHERE kind='grant_role'") == [("canceled",)]
    assert [call for call in world.discord.calls if call[0] == "add"] == []


async def in_order_and_reversed_twice(
    world: World, events: list[dict[str, Any]], before: Path
) -> dict[str, list[Any]]:
    """Deliver `events` in order to the world, and in reverse, each twice, to a copy of the
    database taken `before` them; assert both end alike and return that state."""
    for event in events:
        await world.deliver(event)
    store = Store(before, world.clock)
    await store.open()
    dispatcher = build_domain(make_settings(world.stripe, before)).dispatcher
    inbox = Inbox(store, world.inbox.payments, dispatcher, lambda: None)
    try:
        for event in reversed(events):
            await world.deliver(event, inbox)
            await world.deliver({**event, "id": event["id"] + "_again"}, inbox)
    finally:
        await store.close()
    in_order, reverse = snapshot(world.store.db.path), snapshot(before)
    for name in in_order:
        assert in_order[name] == reverse[name], name
    return in_order


def snapshot(path: Path) -> dict[str, list[Any]]:
    """Orders, entitlements, jobs and Stripe facts, without timestamps, codes or row ids
    (entitlements are named by their order: which one is created first depends on order)."""
    queries = {
        "orders": "SELECT id, status, recipient_id, stripe_payment_intent_id,"
        " stripe_subscription_id, claim_code IS NOT NULL FROM orders ORDER BY id",
        "entitlements": "SELECT order_id, user_id, product_id, status, ends_at, end_reason,"
        " cycle FROM entitlements ORDER BY order_id",
        # Payment-failure notices describe the moment (see bot/lifecycle.py), so they are left out.
        "jobs": "SELECT j.kind, j.user_id, j.order_id, e.order_id, j.action_id, j.dedupe_key,"
        " j.status, j.payload FROM delivery_jobs j LEFT JOIN entitlements e"
        " ON e.id = j.entitlement_id"
        " WHERE COALESCE(j.dedupe_key, '') NOT LIKE 'invoice:%:notice:%'"
        " AND COALESCE(j.dedupe_key, '') NOT LIKE 'subscription:%:notice:payment_failed:%'",
        "subscriptions": "SELECT stripe_subscription_id, status, cancel_at_period_end,"
        " current_period_end, paid_through, ended_at, last_event_created"
        " FROM subscriptions ORDER BY 1",  # last_event_id: the test's copies get new ids
        "reversals": "SELECT stripe_payment_intent_id, kind, stripe_object_id"
        " FROM payment_reversals ORDER BY 1, 2",
    }
    with sqlite3.connect(path) as conn:
        found = {name: list(conn.execute(sql)) for name, sql in queries.items()}
        owner = dict(conn.execute("SELECT id, order_id FROM entitlements"))
    found["jobs"] = sorted(
        (
            *row[:5],
            re.sub(r"entitlement:(\d+)", lambda m: f"order:{owner[int(m[1])]}", row[5]),
            *row[6:],
        )
        for row in found["jobs"]
    )
    return found


async def test_events_in_reverse_order_and_twice_end_in_the_same_state(
    world: World, tmp_path: Path
) -> None:
    """Every lifecycle event delivered in reverse, each twice, gives the in-order final state."""
    gold = await add_product(world, "Gold")
    await add_message(world, gold, "on_refund", "refunded")
    await add_message(world, gold, "on_chargeback", "disputed")
    await add_product(world, "Pro", kind="subscription", interval="month")
    gold_order, _ = await world.shop.start_checkout(GUILD, BUYER, "gold")
    pro_order, _ = await world.shop.start_checkout(GUILD, OTHER, "pro")
    before = tmp_path / "before.db"
    await world.store.db.backup(before)

    fake = world.stripe
    fake.complete_checkout(gold_order.stripe_session_id)
    fake.complete_checkout(pro_order.stripe_session_id)
    pi = fake.sessions[gold_order.stripe_session_id]["payment_intent"]
    sub = fake.sessions[pro_order.stripe_session_id]["subscription"]
    steps = [
        lambda: fake.refund(pi, amount=100),
        lambda: fake.refund(pi),
        lambda: fake.dispute(pi),
        lambda: fake.renew_subscription(sub),
        lambda: fake.fail_invoice(sub),
        lambda: fake.pay_invoice(fake.subscriptions[sub]["latest_invoice"]),
        lambda: fake.cancel_subscription(sub, at_period_end=True),
        lambda: fake.renew_subscription(sub),  # → deleted at period end
    ]
    for step in steps:
        world.advance(days=3)
        step()
    events = [copy.deepcopy(event) for event in fake.events.values()]
    assert {"customer.subscription.deleted", "charge.dispute.created"} <= {
        e["type"] for e in events
    }

    in_order = await in_order_and_reversed_twice(world, events, before)
    assert [row[1] for row in in_order["orders"]] == ["disputed", "paid"]
    assert [row[3:6:2] for row in in_order["entitlements"]] == [
        ("revoked", "chargeback"),
        ("expired", "canceled"),
    ]


async def test_run_expiry_expires_due_access_and_wakes_the_worker(world: World) -> None:
    """The expiry loop ends due access on its first pass (the schedule is in the DB)."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    world.advance(days=8)
    woke = asyncio.Event()
    task = asyncio.create_task(run_expiry(world.store, world.lifecycle, woke.set, interval=3600))
    try:
        await asyncio.wait_for(woke.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert world.rows("SELECT status FROM entitlements") == [("expired",)]


async def test_role_given_just_before_a_crash_is_still_taken_back(world: World) -> None:
    """The process dies after Discord gave the role but before the grant job completed: the
    ledger already says the role is ours, so expiry takes it back (it used to stay forever)."""
    await add_product(world, "Week", kind="timed", duration_days=7)
    await buy(world, "week")
    async with world.store.reading() as tx:
        (grant,) = [job for job in await tx.jobs.due() if job.kind == "grant_role"]
    await world.worker._grant_role(grant)  # the effect happened; the job was never finished
    assert world.discord.roles[BUYER] == {ROLE}
    world.advance(days=8)
    assert await world.expire() == 1
    await world.run_jobs()
    assert world.discord.roles[BUYER] == set()
