"""The webhook inbox: store verified events durably, then process each exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bot.fulfilment import EventRejected, Fulfilment
from bot.payments import PaymentGateway
from bot.store import Store

log = logging.getLogger(__name__)


class Inbox:
    """`receive` stores (the webhook's 200 follows); `run` applies stored events in order."""

    def __init__(
        self, store: Store, payments: PaymentGateway, fulfilment: Fulfilment, on_jobs_queued: Any
    ) -> None:
        self.store = store
        self.payments = payments
        self.fulfilment = fulfilment
        self._on_jobs_queued = on_jobs_queued
        self._wake = asyncio.Event()
        self.processed = 0

    def verify(self, payload: bytes, signature: str) -> dict[str, Any]:
        """Raises bot.payments.InvalidSignature."""
        return self.payments.verify_event(payload, signature)

    async def receive(self, event: dict[str, Any], payload: bytes) -> bool:
        """Store a verified event; False if its id was already stored (no second effect)."""
        async with self.store.transaction() as tx:
            fresh = await tx.events.insert(
                event["id"], event["type"], event["created"], payload.decode("utf-8")
            )
        if fresh:
            self._wake.set()
        return fresh

    async def run(self) -> None:
        """Process stored events forever (including any left from before a crash)."""
        while True:
            self._wake.clear()
            async with self.store.reading() as tx:
                batch = await tx.events.unprocessed(limit=100)
            for stored in batch:
                await self.process(stored.id, stored.payload)
            if not batch:
                await self._wake.wait()

    async def process(self, event_id: str, payload: str) -> None:
        """Apply one event and mark it processed in the same transaction."""
        event = json.loads(payload)
        try:
            async with self.store.transaction() as tx:
                current = await tx.events.get(event_id)
                if current is None or current.status != "received":
                    return
                status, order_id = await self.fulfilment.apply(tx, event)
                await tx.events.mark(event_id, status, order_id=order_id)
        except EventRejected as exc:
            log.warning("stripe event %s (%s) not applied: %s", event_id, event["type"], exc)
            async with self.store.transaction() as tx:
                await tx.events.mark(event_id, "failed", error=str(exc))
                await tx.audit.add(
                    "event.rejected", event_id=event_id, type=event["type"], reason=str(exc)
                )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            log.warning("stripe event %s (%s) is malformed: %r", event_id, event["type"], exc)
            async with self.store.transaction() as tx:
                await tx.events.mark(event_id, "failed", error=f"malformed: {exc!r}"[:300])
        except Exception as exc:
            log.exception("stripe event %s (%s) failed", event_id, event["type"])
            async with self.store.transaction() as tx:
                await tx.events.mark(event_id, "failed", error=f"{type(exc).__name__}: {exc}")
        self.processed += 1
        self._on_jobs_queued()
