"""Rate-limit buckets, X-RateLimit headers, 429 responses and fault injection."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .responses import json_response

ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


def bucket_hash(name: str) -> str:
    """A stable, Discord-looking bucket hash for a route."""
    return hashlib.sha1(name.encode()).hexdigest()[:32]


def rate_limited(retry_after: float, bucket: str, *, is_global: bool = False) -> web.Response:
    """A 429 exactly as Discord sends it (discord.py retries only with `Via` + JSON body)."""
    retry_after = round(max(retry_after, 0.001), 3)
    return json_response(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
        status=429,
        headers={
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "user",
            "X-RateLimit-Limit": "1",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        },
    )


@dataclass
class FixedWindow:
    """A fixed window bucket: `limit` requests per `per_seconds`, window starts on first use."""

    limit: int
    per_seconds: float
    count: int = 0
    window_end: float = 0.0

    def take(self) -> tuple[bool, dict[str, str], float]:
        """Consume one request; return (allowed, headers, retry_after)."""
        now = time.monotonic()
        if now >= self.window_end:
            self.count, self.window_end = 0, now + self.per_seconds
        allowed = self.count < self.limit
        if allowed:
            self.count += 1
        reset_after = self.window_end - now
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - self.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        }
        return allowed, headers, reset_after


#: Paths Discord does not count against the bot's global limit: interaction answers and
#: their follow-ups (webhook tokens), and the gateway URL lookups.
GLOBAL_EXEMPT = ("/interactions/", "/webhooks/")


def globally_limited(retry_after: float) -> web.Response:
    """The global 429: `global: true` in the body, `X-RateLimit-Global`, scope `global`."""
    retry_after = round(max(retry_after, 0.001), 3)
    return json_response(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": True},
        status=429,
        headers={
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
        },
    )


class RateLimiter:
    """Per-route headers; the member-role route gets one real bucket per guild when enabled,
    and the bot token one global bucket when enabled (Discord: 50 requests per second)."""

    def __init__(self) -> None:
        """No role bucket until set_role_rate_limit() is called, no global one until
        set_global_rate_limit()."""
        self.role_limit: tuple[int, float] | None = None
        self._role_buckets: dict[int, FixedWindow] = {}
        self._global: FixedWindow | None = None
        #: Requests refused by the global limit (what a fleet must keep at zero).
        self.global_429s = 0

    def set_global_rate_limit(self, limit: int | None = 50, per_seconds: float = 1.0) -> None:
        """Enable (or with `limit=None` disable) the bot token's global bucket."""
        self._global = None if limit is None else FixedWindow(limit, per_seconds)

    def check_global(self, path: str, bot_token: bool) -> web.Response | None:
        """The global 429 for a bot-token request past the limit, else None (counted)."""
        if self._global is None or not bot_token or path.startswith(GLOBAL_EXEMPT):
            return None
        allowed, _headers, retry_after = self._global.take()
        if allowed:
            return None
        self.global_429s += 1
        return globally_limited(retry_after)

    def set_role_rate_limit(self, limit: int | None = 10, per_seconds: float = 1.0) -> None:
        """Enable (or with `limit=None` disable) the per-guild member-role bucket."""
        self.role_limit = None if limit is None else (limit, per_seconds)
        self._role_buckets.clear()

    def check(
        self, template: str | None, route_key: str, guild_id: int | None
    ) -> tuple[web.Response | None, dict[str, str]]:
        """Return (429 response or None, headers to add to the real response)."""
        if template == ROLE_ROUTE and self.role_limit is not None and guild_id is not None:
            bucket = bucket_hash("member-roles")
            window = self._role_buckets.get(guild_id)
            if window is None:
                window = self._role_buckets[guild_id] = FixedWindow(*self.role_limit)
            allowed, headers, retry_after = window.take()
            headers["X-RateLimit-Bucket"] = bucket
            return (None if allowed else rate_limited(retry_after, bucket)), headers
        name = "member-roles" if template == ROLE_ROUTE else route_key
        return None, {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": bucket_hash(name),
        }


Matcher = Callable[[str, str, "str | None"], bool]


@dataclass
class Fault:
    """An injected failure or delay for requests matching `match`.

    `match` is a substring of "METHOD /path" (path relative to /api/v10, e.g. "/roles/" or
    "PUT /guilds") or a callable `(method, path, template) -> bool`. `status=None` only delays.
    `count=None` fires forever. `body` may be a dict (JSON) or str (text/plain).
    """

    match: str | Matcher
    status: int | None = 500
    count: int | None = 1
    delay: float = 0.0
    body: Any = None
    retry_after: float = 0.05
    hits: int = 0

    def matches(self, method: str, path: str, template: str | None) -> bool:
        """Whether this fault applies to the request (and has shots left)."""
        if self.count is not None and self.hits >= self.count:
            return False
        if callable(self.match):
            return bool(self.match(method, path, template))
        return self.match in f"{method} {path}"

    def response(self) -> web.Response | None:
        """The injected response (None for a pure delay)."""
        if self.status is None:
            return None
        if self.status == 429:
            return rate_limited(self.retry_after, bucket_hash("injected"))
        if isinstance(self.body, str):
            return web.Response(text=self.body, status=self.status, content_type="text/plain")
        body = self.body or {
            "message": f"{self.status}: {_REASONS.get(self.status, 'Error')}",
            "code": 0,
        }
        return json_response(body, status=self.status)


_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class FaultInjector:
    """The list of active faults, consulted once per request."""

    def __init__(self) -> None:
        """No faults and no latency."""
        self.faults: list[Fault] = []
        self.latency: float = 0.0

    def add(self, fault: Fault) -> Fault:
        """Register a fault and return it (inspect `.hits` later)."""
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault and the latency knob."""
        self.faults.clear()
        self.latency = 0.0

    def take(self, method: str, path: str, template: str | None) -> tuple[float, Fault | None]:
        """Return (delay to apply, fault that fires or None); consumes one shot."""
        for fault in self.faults:
            if fault.matches(method, path, template):
                fault.hits += 1
                return self.latency + fault.delay, fault
        return self.latency, None

    def __iter__(self) -> Any:
        """Iterate over the registered faults."""
        return iter(self.faults)

    def __len__(self) -> int:
        """Number of registered faults."""
        return len(self.faults)
