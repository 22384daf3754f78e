"""Shared fixtures: the local fakes of Stripe and Discord, and a running shopbot against them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.shop import Shop, open_shop

pytest_plugins = ["tests.fakes.discord.fixtures", "tests.fakes.stripe.fixtures"]


@pytest_asyncio.fixture
async def shop(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> AsyncIterator[Shop]:
    """A guild with an admin, a buyer and a VIP role, and `shopbot run` connected to it."""
    async with open_shop(tmp_path, fake_discord, fake_stripe) as running:
        yield running
