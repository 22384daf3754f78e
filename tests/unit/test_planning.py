"""The planner (bot/planning.py): one key grammar, enforced by the database's unique indexes."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from bot.clock import SystemClock
from bot.planning import Keys
from bot.store import Store
from bot.store.db import _migrations
from bot.store.roles import WantedRole
from tests.unit.world import BUYER, GUILD, OTHER, ROLE, World, add_message, add_product, buy

GRAMMAR = re.compile(
    r"^(order:\d+|entitlement:\d+|invoice:[A-Za-z0-9_]+)"
    r":(on_purchase|on_expire|on_refund|on_chargeback):action:\d+(:c\d+)?$"
    r"|^(order:\d+):receipt$"
    r"|^entitlement:\d+:(revoke:role|restore:action):\d+(:c\d+)?$"
    r"|^(order:\d+|entitlement:\d+|invoice:[A-Za-z0-9_]+|subscription:[A-Za-z0-9_]+)"
    r":notice:[a-z_]+(:[a-z_]+|:\d{4}-\d\d-\d\d)?(:c\d+)?$"
    r"|^entitlement:\d+:reminder:(renewal|trial|expiry):\d+:\d+$"
)
OPEN_GRAMMAR = re.compile(
    r"^entitlement:\d+:role:\d+:(grant|revoke)$|^member:\d+:\d+:role:\d+:revoke$"
)


async def test_every_key_a_lifecycle_writes_follows_the_grammar(world: World) -> None:
    """Purchase, renewal failure, restore, refund, dispute, manual grant: one grammar."""
    gold = await add_product(world, "Gold")
    await add_message(world, gold, "on_purchase", "welcome")
    await add_message(world, gold, "on_refund", "refunded")
    await add_product(world, "Pro", kind="subscription", interval="month")
    order = await buy(world, "gold")
    await buy(world, "pro", user=OTHER)
    pi = world.stripe.sessions[order.stripe_session_id]["payment_intent"]
    world.stripe.refund(pi)
    (sub,) = world.stripe.subscriptions
    world.stripe.fail_invoice(sub)
    await world.flush()
    await world.run_jobs()
    await world.services.admin_ops.grant(GUILD, 1, BUYER, "pro", days=3)
    await world.services.admin_ops.revoke(GUILD, 1, BUYER, "pro")
    keys = [key for (key,) in world.rows("SELECT dedupe_key FROM delivery_jobs") if key]
    assert len(keys) >= 8
    assert [key for key in keys if not GRAMMAR.match(key)] == []
    open_keys = [key for (key,) in world.rows("SELECT open_key FROM delivery_jobs") if key]
    assert open_keys and [key for key in open_keys if not OPEN_GRAMMAR.match(key)] == []


async def test_the_same_effect_is_queued_once_whoever_asks(world: World) -> None:
    """Planning a stage twice (a replayed event, a second end) adds nothing the second time."""
    await add_product(world, "Gold")
    order = await buy(world, "gold")
    async with world.store.transaction() as tx:
        product = await tx.products.get(order.product_id)
        entitlement = await tx.entitlements.by_order(order.id)
        assert product is not None and entitlement is not None
        again = await world.planner.stage(tx, order, product, BUYER, entitlement.id, "on_purchase")
        receipts = await world.planner.receipt(tx, order) + await world.planner.receipt(tx, order)
    assert (again, receipts) == (0, 1)
    assert world.rows("SELECT kind FROM delivery_jobs ORDER BY id") == [
        ("grant_role",),
        ("receipt",),
    ]


async def test_a_repair_is_open_once_and_may_repeat_after_it_finished(world: World) -> None:
    """Rejoin and reconcile grants share an open key: never two at once, again later."""
    await add_product(world, "Gold")
    await buy(world, "gold")
    await world.run_jobs()
    async with world.store.transaction() as tx:
        entitlement = (await tx.entitlements.active_of_member(GUILD, BUYER))[0]
        (action,) = await tx.products.actions(entitlement.product_id, "on_purchase")
        wanted = WantedRole(BUYER, ROLE, entitlement.id, entitlement.order_id, action.id)
        first = await world.planner.regrants(tx, GUILD, BUYER)
        second = await world.planner.regrants(tx, GUILD, BUYER)
        reconcile = await world.planner.reconcile_grant(tx, GUILD, wanted)
    assert (first, second, reconcile) == (1, 0, 0)
    await world.run_jobs()
    async with world.store.transaction() as tx:
        assert await world.planner.reconcile_grant(tx, GUILD, wanted) == 1
    async with world.store.transaction() as tx:  # revokes without an entitlement, likewise
        one = await world.planner.reconcile_revoke(tx, GUILD, OTHER, ROLE)
        two = await world.planner.reconcile_revoke(tx, GUILD, OTHER, ROLE)
    assert (one, two) == (1, 0)


async def test_retry_does_not_reopen_a_repair_that_is_open_again(world: World) -> None:
    """/shop retry of a failed grant is refused while the same grant is queued anew."""
    await add_product(world, "Gold")
    world.discord.refuse.add(OTHER)
    await buy(world, "gold", user=OTHER)
    await world.run_jobs()
    ((failed,),) = world.rows("SELECT id FROM delivery_jobs WHERE status='failed'")
    async with world.store.transaction() as tx:
        assert await world.planner.regrants(tx, GUILD, OTHER) == 1  # the member rejoined
        assert await tx.jobs.retry(failed) is False
    await world.run_jobs()  # the new grant fails too; now the first may be retried
    async with world.store.transaction() as tx:
        assert await tx.jobs.retry(failed) is True


async def test_migration_rewrites_keys_written_before_the_grammar(tmp_path: Path) -> None:
    """A database from before 0003: its keys become the grammar's, so nothing is redone."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for version, _, sql in _migrations():
            if version < 3:
                conn.executescript(sql)
        conn.execute("PRAGMA user_version = 2")
        old = {
            "revoke:entitlement:12:c0:role:555": "entitlement:12:revoke:role:555",
            "revoke:entitlement:7:c3:role:9": "entitlement:7:revoke:role:9:c3",
            "notice:entitlement:4:c0:ended": "entitlement:4:notice:ended",
            "notice:entitlement:41:c12:ended": "entitlement:41:notice:ended:c12",
            "notice:entitlement:5:granted": "entitlement:5:notice:granted",
            "notice:invoice:in_1AbC:payment_failed": "invoice:in_1AbC:notice:payment_failed",
            "entitlement:8:c2:grant:action:31": "entitlement:8:restore:action:31:c2",
            "order:1:on_purchase:action:3": "order:1:on_purchase:action:3",
            "order:1:receipt": "order:1:receipt",
        }
        for key in old:
            conn.execute(
                "INSERT INTO delivery_jobs (guild_id, user_id, kind, dedupe_key, status,"
                " next_attempt_at, created_at, updated_at) VALUES (1, 2, 'notice', ?,"
                " 'completed', '', '', '')",
                (key,),
            )
    conn.close()
    store = Store(path, SystemClock())
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        rewritten = sorted(key for (key,) in conn.execute("SELECT dedupe_key FROM delivery_jobs"))
    conn.close()
    assert rewritten == sorted(old.values())
    assert all(GRAMMAR.match(key) for key in rewritten)


def test_keys_spell_the_grammar() -> None:
    assert Keys.stage_action("order:3", "on_refund", 9) == "order:3:on_refund:action:9"
    assert Keys.stage_action("entitlement:4", "on_expire", 9, 2) == (
        "entitlement:4:on_expire:action:9:c2"
    )
    assert Keys.notice("invoice:in_1", "payment_failed") == "invoice:in_1:notice:payment_failed"
    assert Keys.open_member_role(1, 2, 3, "revoke_role") == "member:1:2:role:3:revoke"
