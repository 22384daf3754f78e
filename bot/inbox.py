"""The webhook inbox: store verified events durably, then process each exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bot.billing.dispatch import Dispatcher
from bot.errors import EventRejected
from bot.payments import PaymentGateway
from bot.store import Store, Tx

log = logging.getLogger(__name__)

# Events applied per transaction: one fsync for several events, yet short enough that the
# webhook writer (which answers Stripe) never waits long for the database.
PROCESS_BATCH = 10


class Inbox:
    """`receive` stores (the webhook's 200 follows); `run` applies stored events in order."""

    def __init__(
        self, store: Store, payments: PaymentGateway, dispatcher: Dispatcher, on_jobs_queued: Any
    ) -> None:
        self.store = store
        self.payments = payments
        self.dispatcher = dispatcher
        self._on_jobs_queued = on_jobs_queued
        self._wake = asyncio.Event()
        self._flush = asyncio.Event()
        self._queue: list[tuple[dict[str, Any], bytes, asyncio.Future[bool]]] = []
        self._writer_running = False
        self.processed = 0

    def verify(self, payload: bytes, signature: str) -> dict[str, Any]:
        """Raises bot.payments.InvalidSignature."""
        return self.payments.verify_event(payload, signature)

    async def receive(self, event: dict[str, Any], payload: bytes) -> bool:
        """Store a verified event; False if its id was already stored (no second effect).

        Returns only after the event is committed. While `run_writer` runs, concurrent
        requests share one transaction (group commit: one fsync for the whole batch).
        """
        if not self._writer_running:
            return (await self._store_batch([(event, payload)]))[0]
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((event, payload, done))
        self._flush.set()
        return await done

    async def run_writer(self) -> None:
        """Forever: store everything queued by `receive` in one transaction, then answer."""
        self._writer_running = True
        try:
            while True:
                await self._flush.wait()
                self._flush.clear()
                batch, self._queue = self._queue, []
                if not batch:
                    continue
                try:
                    results = await self._store_batch([(e, p) for e, p, _ in batch])
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, _, done), fresh in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(fresh)
        finally:
            self._writer_running = False
            for _, _, done in self._queue:
                done.cancel()

    async def _store_batch(self, batch: list[tuple[dict[str, Any], bytes]]) -> list[bool]:
        async with self.store.transaction() as tx:
            results = [
                await tx.events.insert(
                    event["id"], event["type"], event["created"], payload.decode("utf-8")
                )
                for event, payload in batch
            ]
        if any(results):
            self._wake.set()
        return results

    async def run(self) -> None:
        """Process stored events forever (including any left from before a crash)."""
        while True:
            self._wake.clear()
            async with self.store.reading() as tx:
                batch = await tx.events.unprocessed(limit=PROCESS_BATCH)
            if batch:
                await self.process_batch([(stored.id, stored.payload) for stored in batch])
            else:
                await self._wake.wait()

    async def process(self, event_id: str, payload: str) -> None:
        """Apply one stored event (see `process_batch`)."""
        await self.process_batch([(event_id, payload)])

    async def process_batch(self, batch: list[tuple[str, str]]) -> None:
        """Apply events in order in one transaction, each inside its own savepoint.

        An event and its effects (order paid, entitlement, jobs, `processed` mark) commit
        together; an event that fails is rolled back to its savepoint and marked failed
        without undoing the others. One commit (one fsync) for the whole batch.
        """
        async with self.store.transaction() as tx:
            for event_id, payload in batch:
                event = json.loads(payload)
                try:
                    async with tx.savepoint():
                        current = await tx.events.get(event_id)
                        if current is not None and current.status == "received":
                            status, order_id = await self.dispatcher.apply(tx, event)
                            await tx.events.mark(event_id, status, order_id=order_id)
                except Exception as exc:
                    await self._mark_failed(tx, event_id, event, exc)
                self.processed += 1
        self._on_jobs_queued()

    async def _mark_failed(
        self, tx: Tx, event_id: str, event: dict[str, Any], exc: Exception
    ) -> None:
        kind = event.get("type")
        if isinstance(exc, EventRejected):
            log.warning("stripe event %s (%s) not applied: %s", event_id, kind, exc)
            error = str(exc)
            await tx.audit.add("event.rejected", event_id=event_id, type=kind, reason=error)
        elif isinstance(exc, KeyError | TypeError | AttributeError | ValueError):
            log.warning("stripe event %s (%s) is malformed: %r", event_id, kind, exc)
            error = f"malformed: {exc!r}"[:300]
        else:
            log.error("stripe event %s (%s) failed", event_id, kind, exc_info=exc)
            error = f"{type(exc).__name__}: {exc}"[:300]
        await tx.events.mark(event_id, "failed", error=error)
