"""`FakeStripe`: the HTTP server with auth, fault injection, idempotency and Stripe's headers.

For browser tests: `FakeStripe(hosted_checkout=True)` serves a payable Checkout page at each
session's `url` (see hosted.py), and `fake.push_webhooks(url, secret)` delivers every new
event to the bot by itself, signed and retried (see push.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .api import expand, route
from .checkout import CheckoutOps
from .errors import (
    StripeAPIError,
    bad_api_key,
    card_declined,
    idempotency_in_flight,
    idempotency_mismatch,
    invalid,
)
from .forms import FormError, decode_form
from .hosted import HostedCheckout
from .push import DEFAULT_RETRY_DELAYS, DeliveryAttempt, WebhookPush
from .state import DEFAULT_API_VERSION, Clock, RecordedRequest, StripeObject
from .webhooks import WebhookSender

IDEMPOTENCY_TTL = 24 * 3600
_FAULT_MESSAGES = {
    "api_error": "An unknown error occurred. Please try again later.",
    "invalid_request_error": "Invalid request (injected by the fake).",
    "rate_limit": "Too many requests hit the API too quickly.",
}


@dataclass
class Fault:
    """An injected failure or delay for requests whose path contains `path_substring`."""

    path_substring: str
    status: int | None = 500
    count: int | None = 1
    error_type: str = "api_error"
    delay: float = 0.0
    method: str | None = None
    param: str | None = None
    code: str | None = None
    message: str | None = None
    should_retry: bool | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request and has uses left."""
        return (
            (self.count is None or self.hits < self.count)
            and self.path_substring in path
            and self.method in (None, method)
        )

    def error(self) -> StripeAPIError:
        """The Stripe error this fault answers with."""
        if self.status == 402 or self.error_type == "card_error":
            error = card_declined(self.code or "generic_decline")
            error.param = self.param
            return error
        message = self.message or _FAULT_MESSAGES.get(self.error_type, "Injected failure.")
        return StripeAPIError(
            self.status or 500,
            message,
            error_type=self.error_type,
            code=self.code,
            param=self.param,
        )


def record_target(record: RecordedRequest) -> tuple[str, str, dict[str, Any]]:
    """What an Idempotency-Key is bound to: method, path and decoded params."""
    return record.method, record.path, record.params


@dataclass
class _Saved:
    """A stored result for an Idempotency-Key, and the request it is bound to."""

    target: tuple[str, str, dict[str, Any]]
    status: int
    body: dict[str, Any]
    request_id: str
    created: int


class FakeStripe(CheckoutOps):
    """An in-process Stripe API (`api_base`) that the real `stripe` SDK can talk to."""

    def __init__(
        self,
        secret_key: str = "sk_test_fake",
        clock: Clock | None = None,
        *,
        api_version: str = DEFAULT_API_VERSION,
        seed: int = 0,
        hosted_checkout: bool = False,
    ) -> None:
        """`clock` returns unix seconds (default `time.time`); `seed` makes ids repeatable;
        `hosted_checkout` points session urls at the fake's own payable page."""
        super().__init__(secret_key, clock, api_version=api_version, seed=seed)
        self.hosted_checkout = hosted_checkout
        #: `(method, session_id, status)` of every hit of the hosted Checkout page.
        self.checkout_page_requests: list[tuple[str, str, int]] = []
        #: Every automatic webhook delivery attempt (see `push_webhooks`).
        self.webhook_attempts: list[DeliveryAttempt] = []
        self._push: WebhookPush | None = None
        self.faults: list[Fault] = []
        #: Exceptions raised by the fake's own handlers (bugs in the fake), as text.
        self.internal_errors: list[str] = []
        self._saved: dict[str, _Saved] = {}
        self._in_flight: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_base(self) -> str:
        """Base address for `StripeClient(base_addresses={"api": ...})`."""
        if not self.port:
            raise RuntimeError("FakeStripe is not started")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        """Serve on a free port of 127.0.0.1; return `api_base`."""
        app = web.Application()
        app.router.add_routes(HostedCheckout(self).routes())
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self.api_base

    async def stop(self) -> None:
        """Stop pushing webhooks and serving (idempotent)."""
        if self._push is not None:
            await self._push.close()
            self._push = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeStripe:
        """`async with FakeStripe() as fake:` starts and stops the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the server."""
        await self.stop()

    def inject(
        self,
        path_substring: str,
        status: int | None = 500,
        count: int | None = 1,
        error_type: str = "api_error",
        delay: float = 0.0,
        **options: Any,
    ) -> Fault:
        """Fail (or, with `status=None`, only delay) the next `count` matching requests.

        `count=None` means every request. `options`: `method`, `param`, `code`, `message`,
        `should_retry` (sets the `Stripe-Should-Retry` header). 402 answers a `card_error`.
        Injected errors are not saved for their Idempotency-Key, so SDK retries can succeed.
        """
        fault = Fault(path_substring, status, count, error_type, delay, **options)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    def requests_to(self, path_substring: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path contains `path_substring` (and with `method`)."""
        return [
            record
            for record in self.requests
            if path_substring in record.path and method in (None, record.method)
        ]

    async def deliver(self, event: StripeObject | str, sender: WebhookSender) -> tuple[int, str]:
        """Send a stored event through `sender`; a 2xx marks it delivered."""
        event_id = event if isinstance(event, str) else event["id"]
        status, body = await sender.send(self.require(self.events, event_id))
        self.mark_delivered(event_id, 200 <= status < 300)
        return status, body

    async def deliver_pending(self, sender: WebhookSender) -> list[tuple[str, int]]:
        """Deliver every not-yet-delivered event, oldest first; return `(event id, status)`."""
        pending = [eid for eid, event in self.events.items() if event["pending_webhooks"]]
        return [(eid, (await self.deliver(eid, sender))[0]) for eid in pending]

    def push_webhooks(
        self,
        url: str,
        secret: str,
        *,
        enabled_events: tuple[str, ...] = ("*",),
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        """From now on POST every new event to `url`, signed with `secret`, retried after each
        of `retry_delays` seconds on failure (see push.py). Replaces an earlier target."""
        self._push = WebhookPush(
            self, url, secret, enabled_events=enabled_events, retry_delays=retry_delays
        )

    async def wait_webhooks_idle(self, timeout: float = 10.0) -> None:
        """Wait until every pushed event was delivered or given up on."""
        if self._push is not None:
            await self._push.wait_idle(timeout)

    def _event_created(self, event: StripeObject) -> None:
        """Queue the new event for the push target, if one is set and subscribed."""
        if self._push is not None and self._push.wants(event["type"]):
            self._push.enqueue(event["id"])

    def _checkout_url(self, session_id: str) -> str:
        """The fake's own payable page with `hosted_checkout`, else Stripe's address."""
        if self.hosted_checkout:
            return f"{self.api_base}/c/pay/{session_id}"
        return super()._checkout_url(session_id)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        """The first matching fault, counting the hit."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        """Every request: record, authenticate, inject faults, replay or execute, render."""
        request_id = "req_" + self.ids.token(14)
        method, key = request.method, request.headers.get("Idempotency-Key")
        raw = await request.text() if method == "POST" else request.query_string
        record = RecordedRequest(
            method=method,
            path=request.path,
            params={},
            idempotency_key=key,
            stripe_version=request.headers.get("Stripe-Version"),
            request_id=request_id,
            headers=dict(request.headers),
        )
        self.requests.append(record)
        version = record.stripe_version or self.api_version
        headers = {"Request-Id": request_id, "Stripe-Version": version}
        try:
            record.params = decode_form(raw)
            authorization = request.headers.get("Authorization", "")
            if authorization != f"Bearer {self.secret_key}":
                raise bad_api_key(authorization.removeprefix("Bearer ").strip())
            fault = self._take_fault(method, request.path)
            if fault is not None and fault.should_retry is not None:
                headers["Stripe-Should-Retry"] = str(fault.should_retry).lower()
            if fault is not None and fault.status is not None:
                await asyncio.sleep(fault.delay)
                raise fault.error()
            delay = fault.delay if fault is not None else 0.0
            if method == "POST" and key:
                headers["Idempotency-Key"] = key
                status, body = await self._idempotent(record, delay, headers)
            else:
                await asyncio.sleep(delay)
                status, body = self._execute(record, headers)
        except FormError as error:
            status, body = 400, invalid(f"Invalid request body: {error}").body(request_id)
        except StripeAPIError as error:
            status, body = error.status, error.body(request_id)
        record.status = status
        headers["Content-Type"] = "application/json"
        return web.Response(
            status=status, body=json.dumps(body, indent=2).encode(), headers=headers
        )

    async def _idempotent(
        self, record: RecordedRequest, delay: float, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """Replay a saved result for the key, refuse a different reuse, or execute and save."""
        key = str(record.idempotency_key)
        if key in self._in_flight:
            raise idempotency_in_flight(key)
        saved = self._saved.get(key)
        if saved is not None and self.now() - saved.created < IDEMPOTENCY_TTL:
            if saved.target != record_target(record):
                raise idempotency_mismatch(key)
            record.replayed = True
            headers.update({"Idempotent-Replayed": "true", "Original-Request": saved.request_id})
            return saved.status, saved.body
        self._in_flight.add(key)
        try:
            await asyncio.sleep(delay)
            status, body = self._execute(record, headers)
        finally:
            self._in_flight.discard(key)
        if status < 400 or status == 402:
            saved = _Saved(record_target(record), status, body, record.request_id, self.now())
            self._saved[key] = saved
        return status, body

    def _execute(
        self, record: RecordedRequest, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """Run the handler with events attributed to this request; render its result."""
        handler, ids = route(record.method, record.path)
        params = dict(record.params)
        paths = params.pop("expand", None) or []
        self.current_request = {"id": record.request_id, "idempotency_key": record.idempotency_key}
        try:
            result = handler(self, ids, params)
            return 200, expand(self, result, paths if isinstance(paths, list) else [paths])
        except StripeAPIError as error:
            return error.status, error.body(record.request_id)
        except Exception as error:  # a bug in the fake: report it, never let the SDK retry it
            self.internal_errors.append(f"{record.method} {record.path}: {error!r}")
            headers["Stripe-Should-Retry"] = "false"
            failure = StripeAPIError(
                500, f"FakeStripe internal error: {error!r}", error_type="api_error"
            )
            return 500, failure.body(record.request_id)
        finally:
            self.current_request = None
