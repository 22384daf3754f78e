"""Operator tasks behind the CLI: backup, order export, replaying missed Stripe events."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Settings
from bot.inbox import Inbox
from bot.payments import StripeGateway
from bot.services import build_domain
from bot.store import Store

EXPORT_COLUMNS = (
    "id", "guild_id", "buyer_id", "recipient_id", "product_id", "product", "amount",
    "currency", "status", "claim_code", "stripe_session_id", "stripe_payment_intent_id",
    "stripe_subscription_id", "created_at", "paid_at",
)  # fmt: skip


async def backup(store: Store, target: Path) -> None:
    """Online copy of the database (the bot may keep running)."""
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    await store.db.backup(target)


async def export_orders(store: Store, fmt: str) -> str:
    """Every order as CSV or JSON (one object per order), oldest first."""
    async with store.reading() as tx:
        rows = await tx.orders.export_rows()
    records = [{column: row[column] for column in EXPORT_COLUMNS} for row in rows]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


async def replay_events(store: Store, settings: Settings, since: datetime) -> tuple[int, int]:
    """Fetch Stripe events created since `since`, store the missing ones and process them.

    Returns (events fetched, events that were new). Stored ids dedupe, so replaying twice
    (or events that also arrive by webhook) never applies anything twice.
    """
    gateway = _gateway(settings)
    dispatcher = build_domain(settings).dispatcher
    inbox = Inbox(store, gateway, dispatcher, lambda: None)
    fetched = fresh = 0
    try:
        async for event in gateway.events_since(int(since.timestamp()), dispatcher.event_types):
            fetched += 1
            fresh += await inbox.receive(event, json.dumps(event).encode())
        async with store.reading() as tx:
            pending = await tx.events.unprocessed(limit=100_000)
        for stored in pending:
            await inbox.process(stored.id, stored.payload)
    finally:
        await gateway.close()
    return fetched, fresh


async def retry_failed_events(store: Store, settings: Settings) -> tuple[int, str]:
    """Put every failed event back in line and apply it now; return (count, outcome)."""
    async with store.transaction() as tx:
        retried = await tx.events.retry_failed()
    gateway = _gateway(settings)
    inbox = Inbox(store, gateway, build_domain(settings).dispatcher, lambda: None)
    try:
        async with store.reading() as tx:
            due = await tx.events.unprocessed(limit=100_000)
        for stored in due:
            await inbox.process(stored.id, stored.payload)
    finally:
        await gateway.close()
    async with store.reading() as tx:
        counts = await tx.events.status_counts([stored.id for stored in due])
    outcome = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    return retried, outcome


def _gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        settings.stripe.secret_key.get_secret_value(),
        settings.stripe.webhook_secret.get_secret_value(),
        settings.stripe.api_base,
    )


def since_from(text: str) -> datetime:
    """ISO 8601 (a date or a date-time, UTC if no offset given); ValueError otherwise."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
