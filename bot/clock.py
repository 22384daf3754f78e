"""Injectable UTC clock, so expiry and retries are testable without sleeping."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC.

    `SHOPBOT_CLOCK_OFFSET_SECONDS` shifts it (read once at start); tests of expiry use it
    to start the process "in the future" instead of sleeping.
    """

    def __init__(self, offset: timedelta | None = None) -> None:
        if offset is None:
            offset = timedelta(seconds=float(os.environ.get("SHOPBOT_CLOCK_OFFSET_SECONDS", "0")))
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


class FrozenClock:
    """A clock that only moves when told to (unit tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> None:
        self._now += timedelta(**kwargs)


def iso(moment: datetime) -> str:
    """Canonical storage form: UTC ISO-8601 with microseconds (sorts lexically)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """Inverse of `iso`."""
    return datetime.fromisoformat(text).astimezone(UTC)
