"""Reconciliation: compare who should hold which shop role with who does, and fix the gap.

Runs at startup (every READY, which also covers sessions Discord invalidated, whose missed
events are lost) and periodically. Members are read in pages of 1,000 (one list call per
page, not one fetch per entitlement). A role is re-granted when an active entitlement wants
it and the member lacks it; a role is taken back only when the ledger says the bot granted
it and its entitlement ended — roles given by hand are never touched. Jobs parked for a
member who is in the list are woken: their join may have happened while the gateway was
down (its GUILD_MEMBER_ADD is then lost).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterable
from dataclasses import dataclass

from bot.clock import iso
from bot.i18n import _
from bot.planning import Planner, in_guild_locale
from bot.store import Store
from bot.store.roles import WantedRole

log = logging.getLogger(__name__)

PAGE = 1000  # members compared per database read (the size of a Discord member page)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    guild_id: int
    members_seen: int
    granted: int
    revoked: int
    woken: int = 0


class Reconciler:
    """Plans from the database, compares with the member list, queues the fixes."""

    def __init__(self, store: Store, planner: Planner) -> None:
        self.store = store
        self.planner = planner

    async def reconcile(
        self, guild_id: int, members: AsyncIterable[tuple[int, frozenset[int]]]
    ) -> ReconcileReport:
        started = iso(self.store.clock.now())
        grants: list[WantedRole] = []
        revokes: list[tuple[int, int]] = []
        seen = 0
        present: set[int] = set()
        page: list[tuple[int, frozenset[int]]] = []
        async for member in members:
            present.add(member[0])
            page.append(member)
            if len(page) == PAGE:
                seen += await self._compare(guild_id, page, grants, revokes)
                page = []
        if page:
            seen += await self._compare(guild_id, page, grants, revokes)
        async with self.store.transaction() as tx:
            # The member list is a snapshot: drop fixes that the worker made meanwhile.
            repo = tx.roles
            queued = await repo.queued(guild_id)
            fresh = await repo.granted_since(guild_id, started)
            still_stale = await repo.stale(guild_id, sorted({user for user, _ in revokes}))
            granted = revoked = 0
            for item in grants:
                if (item.user_id, item.role_id, "grant_role") in queued:
                    continue
                if (item.user_id, item.role_id) in fresh:
                    continue
                granted += await self.planner.reconcile_grant(tx, guild_id, item)
            for user_id, role_id in revokes:
                if (user_id, role_id, "revoke_role") in queued:
                    continue
                if (user_id, role_id) not in still_stale:
                    continue
                revoked += await self.planner.reconcile_revoke(tx, guild_id, user_id, role_id)
            woken = 0
            for user_id in sorted(await tx.jobs.waiting_members(guild_id) & present):
                if not await tx.roles.in_screening(guild_id, user_id):
                    woken += await tx.jobs.wake_member(guild_id, user_id)
            if granted or revoked or woken:
                await tx.audit.add(
                    "reconcile",
                    guild_id=guild_id,
                    members_seen=seen,
                    granted=granted,
                    revoked=revoked,
                    woken_jobs=woken,
                )
            if granted or revoked:
                await self.planner.log(
                    tx,
                    guild_id,
                    "reconcile",
                    await in_guild_locale(
                        tx,
                        guild_id,
                        lambda: _(
                            "🔧 Reconciliation found role drift and fixes it: {granted} role(s) "
                            "to give back, {revoked} to take away ({seen} members checked).",
                            granted=granted,
                            revoked=revoked,
                            seen=seen,
                        ),
                    ),
                )
        report = ReconcileReport(guild_id, seen, granted, revoked, woken)
        self._log(report)
        return report

    async def _compare(
        self,
        guild_id: int,
        page: list[tuple[int, frozenset[int]]],
        grants: list[WantedRole],
        revokes: list[tuple[int, int]],
    ) -> int:
        """Compare one page of members with the database rows of just those members."""
        user_ids = [user_id for user_id, _ in page]
        async with self.store.reading() as tx:
            wanted: dict[int, list[WantedRole]] = defaultdict(list)
            for item in await tx.roles.wanted(guild_id, user_ids):
                wanted[item.user_id].append(item)
            stale: dict[int, set[int]] = defaultdict(set)
            for user_id, role_id in await tx.roles.stale(guild_id, user_ids):
                stale[user_id].add(role_id)
        for user_id, held in page:
            wanted_here = wanted.get(user_id, [])
            wanted_ids = {item.role_id for item in wanted_here}
            given: set[int] = set()
            for item in wanted_here:
                if item.role_id not in held and item.role_id not in given:
                    grants.append(item)
                    given.add(item.role_id)
            for role_id in (stale.get(user_id, set()) & held) - wanted_ids:
                revokes.append((user_id, role_id))
        return len(page)

    def _log(self, report: ReconcileReport) -> None:
        log.info(
            "reconciled guild %s: %d members, %d roles to give back, %d to take back,"
            " %d parked jobs woken",
            report.guild_id,
            report.members_seen,
            report.granted,
            report.revoked,
            report.woken,
        )
