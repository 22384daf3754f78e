"""LicenseService: is this license key valid on this machine? Device binding and resets.

Integrators' software calls `validate` (through the integration API's
`POST /api/v1/licenses/validate`); admins unbind a key's machines with `/shop license reset`.
A key answers from its order and entitlement: access ended by a refund, chargeback or an
admin is `revoked`, by time `expired`. Unknown keys run the same queries as known ones (a
key id that matches nothing), so the answer's timing does not tell them apart. A check is a
read; only binding a machine, or noting one seen at most every `TOUCH_EVERY`, writes.
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.models import EntitlementStatus, OrderStatus
from bot.store import Store
from bot.store.licenses import LicenseFacts

MAX_KEY = 200  # longer "keys" are not keys; refused before any lookup
MAX_HWID = 200
#: The id no license row has: unknown keys run the same device queries against it.
NO_LICENSE = 0
#: Stands in for a found key in the constant-time comparison of an unknown one.
_DUMMY_KEY = "\x00" * 32
#: A bound machine's `last_seen_at` is written at most this often: a validation is a read
#: (no commit, no fsync) unless it binds a machine or that time has passed.
TOUCH_EVERY = timedelta(minutes=5)


class LicenseInputError(ValueError):
    """A malformed key or hwid (empty, too long); nothing was looked up."""


@dataclass(frozen=True, slots=True)
class LicenseCheck:
    """The answer of `validate` (SPEC §5c)."""

    valid: bool
    status: str  # active | revoked | expired | unknown | device_limit
    product_id: int | None = None
    user_id: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RateLimited:
    """Too many validations for this key or from this client: try again after `retry_after`
    seconds (the route answers 429 with `Retry-After`)."""

    retry_after: float
    scope: str  # "key" | "client"


class SlidingLimiter:
    """At most `limit` hits per `window` per name, in memory, on an injectable clock."""

    def __init__(self, clock: Clock, limit: int, window: timedelta, max_names: int = 100_000):
        self.clock = clock
        self.limit = limit
        self.window = window
        self.max_names = max_names
        self._hits: dict[str, deque[datetime]] = {}

    def hit(self, name: str) -> float | None:
        """Count one hit; None when allowed, else seconds until the next one would be."""
        now = self.clock.now()
        hits = self._hits.get(name)
        if hits is None:
            if len(self._hits) >= self.max_names:  # forget names whose window has passed
                since = now - self.window
                self._hits = {n: h for n, h in self._hits.items() if h and h[-1] > since}
            hits = self._hits[name] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max((hits[0] + self.window - now).total_seconds(), 0.001)
        hits.append(now)
        return None


def standing(facts: LicenseFacts, now: datetime) -> str:
    """active | revoked | expired, from the key's order and entitlement."""
    if facts.order_status in (OrderStatus.REFUNDED, OrderStatus.DISPUTED):
        return "revoked"
    if facts.entitlement_status == EntitlementStatus.REVOKED:
        return "revoked"
    if facts.entitlement_status == EntitlementStatus.EXPIRED:
        return "expired"
    if facts.ends_at is not None and facts.ends_at <= now:
        return "expired"  # its time ran out; the expiry loop has not closed it yet
    if facts.order_status != OrderStatus.PAID:
        return "revoked"
    return "active"


class LicenseService:
    """Validates keys against their entitlement and binds hardware ids."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        per_key_per_minute: int = 30,
        per_client_per_minute: int = 120,
    ) -> None:
        self.store = store
        self.clock = clock
        self.key_limiter = SlidingLimiter(clock, per_key_per_minute, timedelta(minutes=1))
        self.client_limiter = SlidingLimiter(clock, per_client_per_minute, timedelta(minutes=1))

    async def validate(self, key: str, hwid: str | None, client: str) -> LicenseCheck | RateLimited:
        """Check `key` (on machine `hwid`, if given) for the caller at address `client`.

        The first hwids bind, up to the product's `max_devices`; a bound hwid is valid again;
        one more gets `device_limit` (nothing bound). Without a hwid nothing is bound.
        Raises LicenseInputError for an empty or oversized key or hwid.
        """
        key = key.strip()
        if not key or len(key) > MAX_KEY:
            raise LicenseInputError("key must be 1 to 200 characters")
        if hwid is not None:
            hwid = hwid.strip()
            if not hwid or len(hwid) > MAX_HWID:
                raise LicenseInputError("hwid must be 1 to 200 characters when given")
        for scope, limiter, name in (
            ("client", self.client_limiter, client),
            ("key", self.key_limiter, key),
        ):
            wait = limiter.hit(name)
            if wait is not None:
                return RateLimited(retry_after=wait, scope=scope)
        async with self.store.peek() as tx:
            facts = await tx.licenses.facts(key)
            # The same work whether or not the key exists: compare, list devices.
            found = hmac.compare_digest((facts.key if facts else _DUMMY_KEY).encode(), key.encode())
            license_id = facts.license_id if facts and found else NO_LICENSE
            devices = await tx.licenses.devices(license_id)
            now = tx.now
        if facts is None or not found:
            return LicenseCheck(valid=False, status="unknown")
        status = standing(facts, now)
        check = LicenseCheck(
            valid=status == "active",
            status=status,
            product_id=facts.product_id,
            user_id=facts.user_id,
            expires_at=facts.ends_at,
        )
        last_seen = devices.get(hwid) if hwid is not None else None
        if status != "active" or hwid is None:
            return check
        if last_seen is not None:
            if now - last_seen >= TOUCH_EVERY:  # a bound machine: its last_seen_at, sparingly
                async with self.store.transaction() as wtx:
                    await wtx.licenses.touch(facts.license_id, hwid)
            return check
        if len(devices) >= facts.max_devices:
            return replace(check, valid=False, status="device_limit")
        async with self.store.transaction() as wtx:  # bind: count again under the write lock
            bound = await wtx.licenses.devices(facts.license_id)
            if hwid in bound:
                return check
            if len(bound) >= facts.max_devices:
                return replace(check, valid=False, status="device_limit")
            await wtx.licenses.bind(facts.license_id, hwid)
            await wtx.audit.add("license.bound", license_id=facts.license_id, hwid=hwid)
        return check

    async def reset(
        self, key: str, guild_id: int | None = None, actor_id: int | None = None
    ) -> bool:
        """Unbind every device of the handed-out `key` (of a product of `guild_id`, when
        given); False when no order holds such a key (nothing changed)."""
        key = key.strip()
        if not key or len(key) > MAX_KEY:
            return False
        async with self.store.transaction() as tx:
            unbound = await tx.licenses.unbind_all(key, guild_id)
            if unbound is None:
                return False
            await tx.audit.add(
                "license.reset", guild_id=guild_id, actor_id=actor_id, devices=unbound
            )
        return True
