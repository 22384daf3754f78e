"""Composition: `build_services` wires every service from settings, store, payments, clock
and the Discord port. The bot (bot/app.py) and the unit tests both call it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.actions import ActionService
from bot.admin_ops import AdminOps
from bot.admin_reports import AdminReports
from bot.clock import Clock
from bot.config import Settings
from bot.delivery import DeliveryWorker, DiscordActions
from bot.fulfilment import Fulfilment
from bot.inbox import Inbox
from bot.members import MemberService
from bot.payments import PaymentGateway
from bot.reconcile import Reconciler
from bot.shop import ShopService
from bot.store import Store


@dataclass(frozen=True, slots=True)
class Services:
    """Every service of one process; cogs and the web server reach data only through these."""

    fulfilment: Fulfilment
    shop: ShopService
    members: MemberService
    reconciler: Reconciler
    worker: DeliveryWorker
    inbox: Inbox
    actions: ActionService
    reports: AdminReports
    admin_ops: AdminOps


def build_services(
    settings: Settings,
    store: Store,
    payments: PaymentGateway,
    clock: Clock,
    discord: DiscordActions,
    *,
    on_job_outcome: Callable[[str, str], None] | None = None,
) -> Services:
    """Build the services; the worker is woken whenever a committed transaction made jobs due."""
    fulfilment = Fulfilment(settings)
    shop = ShopService(store, payments, settings, clock)
    worker = DeliveryWorker(store, discord, clock, on_outcome=on_job_outcome)
    store.on_jobs_due = worker.wake
    return Services(
        fulfilment=fulfilment,
        shop=shop,
        members=MemberService(store, fulfilment),
        reconciler=Reconciler(store),
        worker=worker,
        inbox=Inbox(store, payments, fulfilment, worker.wake),
        actions=ActionService(store, shop),
        reports=AdminReports(store),
        admin_ops=AdminOps(store, payments, shop, fulfilment.lifecycle.access, settings),
    )
