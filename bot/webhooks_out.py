"""Outbound webhooks: endpoints (WebhookService), signing, and POSTing one delivery job.

Events (SPEC §5c) are planned by `Planner.webhook` in the transaction of the fact they
report, one `webhook` job per subscribed endpoint, keyed by fact × endpoint; the worker runs
them through `WebhookSender.deliver`. A 2xx completes the job; anything else is retried with
backoff. An endpoint whose deliveries have failed for `GIVE_UP` is disabled and every admin
log channel is told. Receivers see each event at least once, with the same `id` every time.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.clock import Clock
from bot.errors import PermanentFailure, TransientFailure
from bot.models import Job
from bot.planning import Planner
from bot.store import Store
from bot.store.webhooks import Attempt, Endpoint

EVENTS = (
    "order.paid",
    "order.refunded",
    "order.disputed",
    "access.granted",
    "access.ended",
    "subscription.renewed",
    "subscription.payment_failed",
    "delivery.failed",
)
SIGNATURE_HEADER = "Shopbot-Signature"
TIMEOUT = 10.0  # seconds for one POST
GIVE_UP = timedelta(days=3)
FIRST_RETRY = 60.0  # seconds; doubles each attempt …
MAX_RETRY = 6 * 3600.0  # … up to this


class WebhookInputError(ValueError):
    """A bad URL or event name; nothing was written."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Shopbot-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 1 min, 2, 4 … capped at 6 h."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY)


def parse_events(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`order.paid,access.ended` → the event names, checked; WebhookInputError names the bad."""
    names = text.split(",") if isinstance(text, str) else list(text)
    cleaned = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not cleaned:
        raise WebhookInputError("give at least one event; known: " + ", ".join(EVENTS))
    unknown = [n for n in cleaned if n not in EVENTS]
    if unknown:
        raise WebhookInputError(f"unknown event {', '.join(unknown)}; known: " + ", ".join(EVENTS))
    return cleaned


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookInputError(f"URL must be http:// or https:// with a host, got {url!r}")
    if len(url) > 2000:
        raise WebhookInputError("URL is longer than 2000 characters")
    return url


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint as shown after creation (never with its secret)."""

    id: int
    url: str
    events: tuple[str, ...]
    enabled: bool
    created_at: datetime
    disabled_reason: str | None = None

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointView:
        return cls(
            endpoint.id,
            endpoint.url,
            endpoint.events,
            endpoint.enabled,
            endpoint.created_at,
            endpoint.disabled_reason,
        )


class WebhookService:
    """Create, list and delete outbound endpoints; read their delivery log."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, url: str, events: str | list[str]) -> tuple[EndpointView, str]:
        """A new enabled endpoint and its signing secret (shown only now). Raises
        WebhookInputError for a bad URL or event name (nothing written)."""
        url, names = check_url(url), parse_events(events)
        secret = "whsec_" + secrets.token_hex(24)
        async with self.store.transaction() as tx:
            endpoint = await tx.webhooks.create(url, names, secret)
        return EndpointView.of(endpoint), secret

    async def list(self) -> list[EndpointView]:
        async with self.store.reading() as tx:
            return [EndpointView.of(e) for e in await tx.webhooks.all()]

    async def delete(self, endpoint_id: int) -> bool:
        """False when there is no such endpoint; deliveries not sent yet are dropped."""
        async with self.store.transaction() as tx:
            return await tx.webhooks.delete(endpoint_id)

    async def deliveries(self, endpoint_id: int, limit: int = 50) -> builtins.list[Attempt] | None:
        """The endpoint's latest attempts, newest first; None when there is no such endpoint."""
        async with self.store.reading() as tx:
            if await tx.webhooks.get(endpoint_id) is None:
                return None
            return await tx.webhooks.attempts(endpoint_id, limit)


class WebhookSender:
    """The worker's handler for `webhook` jobs: one signed POST per attempt."""

    def __init__(self, store: Store, clock: Clock, planner: Planner) -> None:
        self.store = store
        self.clock = clock
        self.planner = planner

    async def deliver(self, job: Job) -> None:
        """POST the event; 2xx done, else TransientFailure with the next delay, until the
        endpoint has failed for GIVE_UP (then it is disabled and the job fails)."""
        endpoint_id = int(job.payload["endpoint_id"])
        event: dict[str, Any] = job.payload["event"]
        async with self.store.reading() as tx:
            endpoint = await tx.webhooks.get(endpoint_id)
        if endpoint is None:
            raise PermanentFailure("the webhook endpoint was deleted")
        if not endpoint.enabled:
            raise PermanentFailure(
                f"the webhook endpoint is disabled ({endpoint.disabled_reason or 'by hand'})"
            )
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "shopbot-webhooks/1",
            SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
                session.post(endpoint.url, data=body, headers=headers) as response,
            ):
                status = response.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {TIMEOUT:.0f} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        async with self.store.transaction() as tx:
            await tx.webhooks.record_attempt(
                endpoint.id,
                event_id=str(event["id"]),
                event_type=str(event["type"]),
                job_id=job.id,
                status_code=status,
                error=error,
            )
            if error is None:
                return
            current = await tx.webhooks.get(endpoint.id)
            since = current.failing_since if current else None
            disabled = since is not None and tx.now - since >= GIVE_UP
            if disabled:
                await self.planner.webhook_disabled(tx, endpoint, error)
        if disabled:
            raise PermanentFailure(f"{error}; endpoint disabled after 3 days of failures")
        if self.clock.now() - job.created_at >= GIVE_UP:
            raise PermanentFailure(f"{error}; given up after 3 days of retries")
        raise TransientFailure(error, retry_after=retry_delay(job.attempts + 1))
