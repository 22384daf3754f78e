"""API keys (created, listed, revoked, checked) and the per-key rate limit."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections import deque
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.errors import InvalidInput, NotFound
from bot.store import Store
from bot.store.api import ApiKey

SCOPES = ("read", "write", "licenses")
KEY_PREFIX = "sbk_"
SHOWN_PREFIX = 12  # characters of the key shown by `api-key list`
MAX_NAME = 80
_KEY_SHAPE = re.compile(r"sbk_[A-Za-z0-9_-]{20,100}")
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """`read,write` → ["read", "write"]; InvalidInput naming an unknown scope."""
    scopes = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"--scopes takes a comma-separated list of {', '.join(SCOPES)}"
            + (f"; not {', '.join(unknown)[:60]}" if unknown else "")
        )
    return scopes


class ApiKeys:
    """Keys are random (256 bits) and kept only as their SHA-256; the key is shown once."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._touched: dict[int, datetime] = {}

    async def create(self, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        name = " ".join(name.split())
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"--name must be 1 to {MAX_NAME} characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.store.transaction() as tx:
            record = await tx.api.add_key(name, key[:SHOWN_PREFIX], hash_key(key), scopes)
            await tx.audit.add("api_key.create", key_id=record.id, name=name, scopes=scopes)
        return record, key

    async def list(self) -> list[ApiKey]:
        async with self.store.reading() as tx:
            return await tx.api.keys()

    async def revoke(self, key_id: int) -> ApiKey:
        async with self.store.transaction() as tx:
            if not await tx.api.revoke_key(key_id):
                raise NotFound(f"there is no live API key with id {key_id} (see `api-key list`)")
            await tx.audit.add("api_key.revoke", key_id=key_id)
            record = await tx.api.key(key_id)
        assert record is not None
        return record

    async def authenticate(self, key: str) -> ApiKey | None:
        """The live key this is, or None (unknown, revoked, malformed)."""
        if not _KEY_SHAPE.fullmatch(key):
            return None
        digest = hash_key(key)
        async with self.store.peek() as tx:
            record = await tx.api.live_key_by_hash(digest)
            stored = await tx.api.key_hash(record.id) if record else None
        if record is None or stored is None or not hmac.compare_digest(stored, digest):
            return None
        now = self.clock.now()
        last = self._touched.get(record.id)
        if last is None or now - last >= TOUCH_EVERY:
            self._touched[record.id] = now
            async with self.store.transaction() as tx:
                await tx.api.touch_key(record.id)
        return record


class RateLimiter:
    """At most `per_minute` requests per key in any 60 s (a sliding window, in memory)."""

    WINDOW = timedelta(minutes=1)

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[int, deque[datetime]] = {}

    def check(self, key_id: int) -> int | None:
        """None: allowed (and counted); else the seconds to wait (Retry-After)."""
        now = self.clock.now()
        seen = self._seen.setdefault(key_id, deque())
        while seen and now - seen[0] >= self.WINDOW:
            seen.popleft()
        if len(seen) >= self.per_minute:
            wait = (seen[0] + self.WINDOW - now).total_seconds()
            return max(1, math.ceil(wait))
        seen.append(now)
        return None
