"""The webhook inbox: store verified events durably, then process each exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from bot.billing.dispatch import Dispatcher
from bot.errors import EventRejected, PaymentError
from bot.invoice_payments import InvoicePayments
from bot.payments import PaymentGateway
from bot.store import Store, Tx
from bot.tasks import wait_event

log = logging.getLogger(__name__)

# Most events applied per transaction: every event waiting, up to this many, goes in one
# (one fsync, one read of their states, one read of the shop's configuration: kept per
# transaction, bot/store/base.py), so a backlog costs far fewer commits than events. The
# webhook writer (which answers Stripe) still waits for at most one event: a batch commits
# early when an acknowledgement is waiting for the database.
PROCESS_BATCH = 100

# On PostgreSQL another process may have stored an event and died before applying it: look
# for such orphans this often (an event is applied once whoever applies it, bot/store/pg.py).
SHARED_POLL = 10.0

# Events parsed by `receive` kept for `run` (so a body is parsed once, not twice); past this
# many waiting (a long backlog) the rest are parsed again from the stored payload.
PARSED_KEPT = 5000

# A transient failure (Stripe unreachable while an event needed its answer, a database
# error, a bug since fixed) is tried again after 5 s, 10 s, 20 s … at most an hour apart,
# EVENT_ATTEMPTS times in all (about 10 h); then the event stays `failed`, shown in
# `/shop diagnose`, until `shopbot events retry`.
EVENT_ATTEMPTS = 20
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """Backoff before the next try of an event that has failed `attempts` times."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


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
        self._parsed: dict[str, dict[str, Any]] = {}
        self.processed = 0
        self.invoice_payments = InvoicePayments(store, payments)

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
        """One statement, one commit for the whole batch; the transaction is urgent (goes
        before queued background work) because Stripe is waiting for the answer."""
        rows = [(e["id"], e["type"], e["created"], p.decode("utf-8")) for e, p in batch]
        async with self.store.transaction(urgent=True) as tx:
            results = await tx.events.insert_many(rows)
        for (event, _), fresh in zip(batch, results, strict=True):
            if fresh and len(self._parsed) < PARSED_KEPT:
                self._parsed[event["id"]] = event
        if any(results):
            self._wake.set()
        return results

    async def run(self) -> None:
        """Process stored events forever (including any left from before a crash).

        Sleeps until a new event is stored or the earliest backoff of a failed one ends.
        """
        while True:
            self._wake.clear()
            async with self.store.reading() as tx:
                batch = await tx.events.unprocessed(limit=PROCESS_BATCH)
                retry_at = None if batch else await tx.events.next_retry_at()
            if batch:
                await self.process_batch([(stored.id, stored.payload) for stored in batch])
                continue
            timeout = None if self.store.dialect == "sqlite" else SHARED_POLL
            if retry_at is not None:
                until = max((retry_at - self.store.clock.now()).total_seconds(), 0.05)
                timeout = until if timeout is None else min(timeout, until)
            await wait_event(self._wake, timeout)

    async def process(self, event_id: str, payload: str) -> None:
        """Apply one stored event (see `process_batch`)."""
        await self.process_batch([(event_id, payload)])

    async def process_batch(self, batch: list[tuple[str, str]]) -> None:
        """Apply events in order in one transaction, each inside its own savepoint.

        An event and its effects (order paid, entitlement, jobs, `processed` mark) commit
        together; an event that fails is rolled back to its savepoint and marked failed
        without undoing the others. One commit (one fsync) for the whole batch, and one
        read of the events' states. The statements run on the loop's thread (see
        bot/store/conn.py InlineSqliteConn), so the loop is given a turn between events: a
        webhook that arrives meanwhile is read, verified and makes the batch commit. What an
        event needs to ask Stripe first (bot/invoice_payments.py) is asked before the
        transaction; when Stripe cannot answer, the event waits out a backoff like any
        transient failure, and the others go on.
        """
        looked_up = [
            (event_id, event, await self._look_up(event_id, event))
            for event_id, event in (
                (event_id, self._parsed.pop(event_id, None) or json.loads(payload))
                for event_id, payload in batch
            )
        ]
        applied: list[tuple[Any, int]] = []
        done = 0
        try:
            async with self.store.transaction() as tx:
                states = await tx.events.states([event_id for event_id, _, _ in looked_up])
                for event_id, event, lookup_error in looked_up:
                    if done:
                        await asyncio.sleep(0)  # the loop's turn (see above)
                        if self.store.urgent_waiting():
                            break  # webhooks wait to be stored: commit; the rest come next
                    done += 1
                    status, attempts = states.get(event_id, ("", 0))
                    if status != "received":
                        continue
                    try:
                        if lookup_error is not None:
                            raise lookup_error
                        async with tx.savepoint():
                            status, order_id = await self.dispatcher.apply(tx, event)
                            await tx.events.mark(event_id, status, order_id=order_id)
                        if status == "processed" and order_id is not None:
                            applied.append((event.get("type"), order_id))
                    except Exception as exc:
                        await self._mark_failed(tx, event_id, event, exc, attempts)
                    self.processed += 1
        finally:
            for event_id, event, _ in looked_up[done:]:  # not reached: parsed again only
                if len(self._parsed) < PARSED_KEPT:  # if the cache is full
                    self._parsed[event_id] = event
        for kind, order_id in applied:  # committed: one line per business event
            log.info("stripe %s applied to order #%s", kind, order_id)
        self._on_jobs_queued()

    async def _look_up(self, event_id: str, event: dict[str, Any]) -> PaymentError | None:
        """Ask Stripe what the event needs (outside the transaction); the error while
        Stripe cannot answer."""
        try:
            await self.invoice_payments.resolve(event)
        except PaymentError as exc:
            return exc
        except Exception:  # a malformed event: the handler will say so when it is applied
            log.exception("looking up stripe event %s failed", event_id)
        return None

    async def _mark_failed(
        self, tx: Tx, event_id: str, event: dict[str, Any], exc: Exception, attempts: int
    ) -> None:
        """Can never apply (not ours, a mismatch, malformed) → `failed`; otherwise retry later."""
        kind = event.get("type")
        if isinstance(exc, EventRejected):
            log.warning("stripe event %s (%s) not applied: %s", event_id, kind, exc)
            error = str(exc)
            await tx.audit.add("event.rejected", event_id=event_id, type=kind, reason=error)
        elif isinstance(exc, KeyError | TypeError | AttributeError | ValueError):
            log.warning("stripe event %s (%s) is malformed: %r", event_id, kind, exc)
            error = f"malformed: {exc!r}"[:300]
        else:
            error = f"{type(exc).__name__}: {exc}"[:300]
            tried = attempts + 1
            if tried < EVENT_ATTEMPTS:
                at = tx.now + retry_delay(tried)
                log.warning(
                    "stripe event %s (%s) failed (attempt %d of %d), retrying at %s",
                    event_id, kind, tried, EVENT_ATTEMPTS, at.isoformat(), exc_info=exc,
                )  # fmt: skip
                await tx.events.retry_later(event_id, error, at)
                return
            log.error(
                "stripe event %s (%s) failed %d times; giving up until `shopbot events retry`",
                event_id, kind, tried, exc_info=exc,
            )  # fmt: skip
        await tx.events.mark(event_id, "failed", error=error)
