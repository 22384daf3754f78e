"""Composition: `build_services` wires every service from settings, store, payments, clock
and the Discord port. The bot (bot/app.py), the CLI (bot/maintenance.py) and the unit tests
call it; nothing else constructs services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.access import Access
from bot.admin_ops import AdminOps
from bot.admin_reports import AdminReports
from bot.billing.checkout import CheckoutEvents
from bot.billing.dispatch import Dispatcher
from bot.billing.refunds import RefundEvents, Reversals
from bot.billing.subscriptions import SubscriptionEvents
from bot.clock import Clock
from bot.config import Settings
from bot.delivery import DeliveryWorker, DiscordActions
from bot.fulfilment import Fulfilment
from bot.inbox import Inbox
from bot.licenses import LicenseService
from bot.lifecycle import Lifecycle
from bot.membership import MemberService
from bot.notices import Notices
from bot.panels import PanelService
from bot.payments import PaymentGateway
from bot.planning import Planner
from bot.product_actions import ActionService
from bot.reconcile import Reconciler
from bot.sharding import Shards
from bot.shop import ShopService
from bot.skus import DiscordStore, SkuService
from bot.store import Store
from bot.stripe_sync import StripeSync
from bot.vault import Vault
from bot.webhooks_out import WebhookService

#: How often a process without shard 0 (it gets no entitlement events) re-reads the next
#: entitlement end that another process's shard 0 may have reported.
ENTITLEMENT_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Domain:
    """The rules, without I/O: planner → access → reversals → lifecycle → fulfilment →
    the event handlers → dispatcher."""

    planner: Planner
    access: Access
    lifecycle: Lifecycle
    fulfilment: Fulfilment
    dispatcher: Dispatcher


def build_domain(settings: Settings) -> Domain:
    planner = Planner(settings)
    access = Access(settings, planner)
    reversals = Reversals(access, planner)
    lifecycle = Lifecycle(access, reversals)
    fulfilment = Fulfilment(lifecycle, planner)
    dispatcher = Dispatcher(
        CheckoutEvents(fulfilment),
        SubscriptionEvents(lifecycle, planner),
        RefundEvents(reversals),
    )
    return Domain(planner, access, lifecycle, fulfilment, dispatcher)


@dataclass(frozen=True, slots=True)
class Services:
    """Every service of one process; cogs and the web server reach data only through these."""

    domain: Domain
    shop: ShopService
    members: MemberService
    reconciler: Reconciler
    worker: DeliveryWorker
    inbox: Inbox
    actions: ActionService
    reports: AdminReports
    admin_ops: AdminOps
    stripe_sync: StripeSync
    panels: PanelService
    notices: Notices
    skus: SkuService
    licenses: LicenseService
    webhooks: WebhookService
    #: The shard range of this process (bot/sharding.py): whose guilds' work it does.
    shards: Shards


def build_services(
    settings: Settings,
    store: Store,
    payments: PaymentGateway,
    clock: Clock,
    discord: DiscordActions,
    *,
    on_job_outcome: Callable[[str, str], None] | None = None,
    vault: Vault | None = None,
    discord_store: DiscordStore | None = None,
    shards: Shards | None = None,
) -> Services:
    """Build the services; the worker is woken whenever a committed transaction made jobs due.
    `shards`: this process's shard range (default: the configured one, or all)."""
    shards = shards or settings.discord.shards
    domain = build_domain(settings)
    shop = ShopService(store, payments, settings, clock, domain.planner)
    worker = DeliveryWorker(
        store,
        discord,
        clock,
        domain.planner,
        vault=vault,
        on_outcome=on_job_outcome,
        shards=shards,
    )
    store.on_jobs_due = worker.wake
    inbox = Inbox(store, payments, domain.dispatcher, worker.wake)
    interval = timedelta(minutes=settings.shop.reconcile_interval_minutes)
    return Services(
        domain=domain,
        shop=shop,
        members=MemberService(store, domain.fulfilment, domain.planner),
        reconciler=Reconciler(store, domain.planner),
        worker=worker,
        inbox=inbox,
        actions=ActionService(store, shop),
        reports=AdminReports(store),
        admin_ops=AdminOps(store, payments, shop, domain.access, domain.planner, settings),
        stripe_sync=StripeSync(store, payments, inbox, domain.dispatcher, clock, interval),
        panels=PanelService(store, shop, discord),
        notices=Notices(settings, store, domain.planner),
        skus=SkuService(
            store,
            shop,
            domain.fulfilment,
            domain.access,
            domain.planner,
            discord_store or _no_store(discord),
            clock,
            # Entitlement events arrive on shard 0 only: without it, re-read the next end.
            recheck=None if shards.owns_shard_zero() else ENTITLEMENT_RECHECK,
        ),
        licenses=LicenseService(
            store,
            clock,
            per_key_per_minute=settings.api.license_validations_per_key_per_minute,
            per_client_per_minute=settings.api.license_validations_per_client_per_minute,
        ),
        webhooks=WebhookService(store),
        shards=shards,
    )


def _no_store(discord: object) -> DiscordStore:
    """The Discord port is the store port too (bot/discord_adapter.py implements both)."""
    return discord  # type: ignore[return-value]
