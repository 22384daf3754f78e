"""Pushing new events to a webhook URL by themselves, signed and retried, as Stripe does.

`fake.push_webhooks(url, secret)` turns it on: from then on every event the fake creates (by
the API, the hosted checkout page or a lifecycle helper) is POSTed to `url` with a
`Stripe-Signature` made with `secret`, in creation order. A delivery that fails (non-2xx or
no connection) is retried after each of `retry_delays` seconds (Stripe retries for hours; the
fake scales that down), then given up; the event then keeps `pending_webhooks=1`, so
`GET /v1/events?delivery_success=false` lists it, as at Stripe. `fake.webhook_attempts` records
every attempt; `await fake.wait_webhooks_idle()` waits until nothing is queued or retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from .webhooks import WebhookSender

if TYPE_CHECKING:
    from .server import FakeStripe

DEFAULT_RETRY_DELAYS = (0.2, 1.0, 3.0)


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of an event to the pushed-to endpoint (`status` None: no HTTP answer)."""

    event_id: str
    attempt: int
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the endpoint answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class WebhookPush:
    """A background deliverer: a queue, one sender, delayed retries."""

    def __init__(
        self,
        fake: FakeStripe,
        url: str,
        secret: str,
        *,
        enabled_events: Iterable[str] = ("*",),
        retry_delays: Iterable[float] = DEFAULT_RETRY_DELAYS,
        timestamp: Callable[[], float] = time.time,
    ) -> None:
        """Deliver to `url`; `timestamp` is the signature's clock (the receiver's real time)."""
        self.fake = fake
        self.sender = WebhookSender(url, secret)
        self.enabled = frozenset(enabled_events)
        self.retry_delays = tuple(retry_delays)
        self.timestamp = timestamp
        self._queue: asyncio.Queue[tuple[str, int]] | None = None
        self._backlog: list[tuple[str, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def wants(self, event_type: str) -> bool:
        """Whether the endpoint is subscribed to this event type."""
        return "*" in self.enabled or event_type in self.enabled

    def enqueue(self, event_id: str, attempt: int = 1) -> None:
        """Queue a delivery (kept aside until an event loop runs)."""
        self._outstanding += 1
        self._idle.clear()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._backlog.append((event_id, attempt))
            return
        self._ensure_worker().put_nowait((event_id, attempt))

    def _ensure_worker(self) -> asyncio.Queue[tuple[str, int]]:
        """Start the worker on first use in a loop, moving the backlog into its queue."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._spawn(self._run())
        for item in self._backlog:
            self._queue.put_nowait(item)
        self._backlog.clear()
        return self._queue

    def _spawn(self, coro: object) -> None:
        """Keep a strong reference to a background task."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        """Deliver queued events one at a time, in order."""
        assert self._queue is not None
        while True:
            event_id, attempt = await self._queue.get()
            try:
                await self._deliver(event_id, attempt)
            finally:
                self._done()

    async def _deliver(self, event_id: str, attempt: int) -> None:
        """One attempt; schedule the next on failure while retries remain."""
        event = self.fake.events[event_id]
        try:
            status, _ = await self.sender.send(event, timestamp=int(self.timestamp()))
            result = DeliveryAttempt(event_id, attempt, status)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            result = DeliveryAttempt(event_id, attempt, None, repr(error))
        self.fake.webhook_attempts.append(result)
        self.fake.mark_delivered(event_id, result.ok)
        if not result.ok and attempt <= len(self.retry_delays):
            self._outstanding += 1
            self._spawn(self._retry_later(event_id, attempt + 1))

    async def _retry_later(self, event_id: str, attempt: int) -> None:
        """Wait the back-off for `attempt`, then queue it."""
        await asyncio.sleep(self.retry_delays[attempt - 2])
        self._outstanding -= 1
        self.enqueue(event_id, attempt)

    def _done(self) -> None:
        """One queued delivery finished."""
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._idle.set()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is queued, in flight or waiting to be retried."""
        if self._backlog:
            self._ensure_worker()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Cancel the worker and pending retries; close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sender.close()
