"""Catching up with Stripe without an operator: events we never received, and drift.

Webhooks can be lost for good: the bot was down longer than Stripe retries (3 days live, a
few hours in test mode) or the endpoint was misconfigured. At every start `catch_up` lists
the events Stripe still keeps (30 days) since shortly before the newest one we hold and
stores the unseen ones in the inbox, which applies them like any webhook (ids dedupe, so
nothing applies twice). Then, every `shop.reconcile_interval_minutes`, `check_subscriptions`
asks Stripe about every subscription that gives access here and folds its current state in
through the same handler as `customer.subscription.updated`: one Stripe says is canceled
ends access here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from bot.billing.dispatch import Dispatcher
from bot.clock import Clock, iso, parse_iso
from bot.inbox import Inbox
from bot.payments import PaymentGateway
from bot.store import Store
from bot.stripe_facts import TERMINAL_STATUSES

log = logging.getLogger(__name__)

#: Stripe lists events of the last 30 days; ask a minute less so the bound is never refused.
EVENT_RETENTION = timedelta(days=30) - timedelta(minutes=1)
#: Events before the newest we hold may still be missing (Stripe delivers out of order and
#: retries failed deliveries later): list from a day before it.
OVERLAP = timedelta(days=1)
FIRST_START = "first_started_at"


class StripeSync:
    """`run` (a supervised loop of bot/app.py): catch up once, then check drift periodically."""

    def __init__(
        self,
        store: Store,
        payments: PaymentGateway,
        inbox: Inbox,
        dispatcher: Dispatcher,
        clock: Clock,
        interval: timedelta,
    ) -> None:
        self.store = store
        self.payments = payments
        self.inbox = inbox
        self.dispatcher = dispatcher
        self.clock = clock
        self.interval = interval

    async def run(self) -> None:
        """Never raises for Stripe trouble: retries the catch-up with backoff, logs drift
        checks that fail and tries again next round."""
        delay = 5.0
        while True:
            try:
                await self.catch_up()
                break
            except Exception:
                log.warning(
                    "catching up with Stripe's events failed; trying again in %.0f s",
                    delay, exc_info=True,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 600.0)
        while True:
            try:
                await self.check_subscriptions()
            except Exception:
                log.warning("subscription drift check failed; next one in %s", self.interval,
                            exc_info=True)  # fmt: skip
            await asyncio.sleep(self.interval.total_seconds())

    async def since(self) -> datetime:
        """Where listing starts: a day before the newest event we hold, or before the first
        start of this install; never more than Stripe's 30 days back."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            newest = await tx.events.newest_created()
            started = await tx.get_meta(FIRST_START)
            if started is None:
                await tx.set_meta(FIRST_START, iso(now))
        if newest is not None:
            anchor = datetime.fromtimestamp(newest, now.tzinfo)
        else:
            anchor = now if started is None else parse_iso(started)
        return max(anchor - OVERLAP, now - EVENT_RETENTION)

    async def catch_up(self) -> tuple[int, int]:
        """Store every listed event we never received; return (listed, new)."""
        since = await self.since()
        listed = fresh = 0
        async for event in self.payments.events_since(
            int(since.timestamp()), self.dispatcher.event_types
        ):
            listed += 1
            fresh += await self.inbox.receive(event, json.dumps(event).encode())
        level = logging.WARNING if fresh else logging.INFO
        log.log(level, "caught up with Stripe since %s: %d events listed, %d we had never "
                "received", since.isoformat(), listed, fresh)  # fmt: skip
        return listed, fresh

    async def check_subscriptions(self) -> int:
        """Fold Stripe's current state of every subscription giving access here into ours;
        return how many changed status."""
        async with self.store.reading() as tx:
            sub_ids = await tx.subscriptions.giving_access()
        changed = 0
        for sub_id in sub_ids:
            obj = await self.payments.subscription(sub_id)
            async with self.store.transaction() as tx:
                before = await tx.subscriptions.get(sub_id)
                if before is not None and before.status == obj.get("status"):
                    continue
                await self.dispatcher.apply(tx, _as_event(obj))
                after = await tx.subscriptions.get(sub_id)
                if after is not None and (before is None or after.status != before.status):
                    changed += 1
                    await tx.audit.add(
                        "subscription.drift",
                        subscription_id=sub_id,
                        ours=None if before is None else before.status,
                        stripe=obj.get("status"),
                    )
                    log.warning(
                        "subscription %s was %s here but %s in Stripe; fixed",
                        sub_id, None if before is None else before.status, obj.get("status"),
                    )  # fmt: skip
        return changed


def _as_event(obj: dict[str, Any]) -> dict[str, Any]:
    """The subscription as a `customer.subscription.updated` fact of no particular time:
    version 0 never overrides a newer event's status, while an ended subscription (terminal
    statuses apply whatever their age) and a later period end still count."""
    status = obj.get("status")
    kind = "deleted" if status in TERMINAL_STATUSES else "updated"
    return {
        "id": f"drift_check_{obj.get('id')}",
        "type": f"customer.subscription.{kind}",
        "created": 0,
        "data": {"object": obj},
    }
