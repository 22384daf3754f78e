"""Pytest fixture `fake_discord`: a started FakeDiscord that fails the test on spec violations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .server import FakeDiscord


@pytest_asyncio.fixture(name="fake_discord")
async def fake_discord_fixture() -> AsyncIterator[FakeDiscord]:
    """Start a FakeDiscord in the test's event loop; at teardown, fail on OpenAPI violations."""
    fake = FakeDiscord(token="fake-token")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    if fake.violations:
        lines = "\n".join(f"  - {v}" for v in fake.violations)
        pytest.fail(f"{len(fake.violations)} Discord OpenAPI violation(s):\n{lines}", pytrace=False)


# The fixture is registered under the name "fake_discord" whichever of these is imported.
fake_discord = fake_discord_fixture
