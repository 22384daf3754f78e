"""The webhook inbox: store verified events durably, then process each exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bot.billing.dispatch import Dispatcher
from bot.errors import EventRejected, PaymentError
from bot.invoice_payments import InvoicePayments
from bot.payments import PaymentGateway
from bot.store import Store, Tx
from bot.tasks import wait_event

log = logging.getLogger(__name__)

# Events applied per transaction: one fsync for several events, yet short enough that the
# webhook writer (which answers Stripe) never waits long for the database.
PROCESS_BATCH = 10
# An event that needs Stripe's answer first (bot/invoice_payments.py) waits this long after
# Stripe could not give it, doubling up to the maximum; the other events go on meanwhile.
LOOKUP_RETRY_FIRST, LOOKUP_RETRY_MAX = 5.0, 300.0


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
        self.invoice_payments = InvoicePayments(store, payments)
        #: Events waiting for Stripe's answer: event id → (loop time to retry, next delay).
        self.deferred: dict[str, tuple[float, float]] = {}
        self.lookup_retry = (LOOKUP_RETRY_FIRST, LOOKUP_RETRY_MAX)

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
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            waiting = {key for key, (at, _) in self.deferred.items() if at > now}
            async with self.store.reading() as tx:
                stored = await tx.events.unprocessed(limit=PROCESS_BATCH + len(waiting))
            batch = [item for item in stored if item.id not in waiting][:PROCESS_BATCH]
            known = {item.id for item in stored}
            for gone in [key for key in self.deferred if key not in waiting | known]:
                del self.deferred[gone]  # applied elsewhere meanwhile (`events replay`)
            if batch:
                await self.process_batch([(item.id, item.payload) for item in batch])
                continue
            retry_at = [at for at, _ in self.deferred.values() if at > now]
            if retry_at:
                await wait_event(self._wake, min(retry_at) - now)
            else:
                await self._wake.wait()

    async def process(self, event_id: str, payload: str) -> None:
        """Apply one stored event (see `process_batch`)."""
        await self.process_batch([(event_id, payload)])

    async def process_batch(self, batch: list[tuple[str, str]]) -> None:
        """Apply events in order in one transaction, each inside its own savepoint.

        An event and its effects (order paid, entitlement, jobs, `processed` mark) commit
        together; an event that fails is rolled back to its savepoint and marked failed
        without undoing the others. One commit (one fsync) for the whole batch. An event
        whose Stripe lookup failed is left unprocessed and retried later (`deferred`).
        """
        ready = []
        for event_id, payload in batch:
            event = json.loads(payload)
            if await self._looked_up(event_id, event):
                ready.append((event_id, event))
        async with self.store.transaction() as tx:
            for event_id, event in ready:
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

    async def _looked_up(self, event_id: str, event: dict[str, Any]) -> bool:
        """Ask Stripe what the event needs (outside the transaction); False: Stripe could
        not answer, so the event waits and is tried again after a growing delay."""
        try:
            await self.invoice_payments.resolve(event)
        except PaymentError as exc:
            first, most = self.lookup_retry
            _, delay = self.deferred.get(event_id, (0.0, first))
            retry_at = asyncio.get_running_loop().time() + delay
            self.deferred[event_id] = (retry_at, min(delay * 2, most))
            log.warning(
                "stripe event %s (%s) waits %.0f s: %s",
                event_id,
                event.get("type"),
                delay,
                exc.user_message,
            )
            return False
        except Exception:  # a malformed event: the handler will say so when it is applied
            log.exception("looking up stripe event %s failed", event_id)
        self.deferred.pop(event_id, None)
        return True

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
