"""Pytest fixtures: a started `FakeStripe` and a real async `StripeClient` pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import stripe

from .server import FakeStripe


@pytest_asyncio.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    """A running fake (secret key `sk_test_fake`, real clock), stopped after the test."""
    fake = FakeStripe(secret_key="sk_test_fake")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def make_client(fake: FakeStripe, http_client: stripe.HTTPClient) -> stripe.StripeClient:
    """A `StripeClient` configured like shopbot's, talking to `fake`."""
    return stripe.StripeClient(
        fake.secret_key,
        http_client=http_client,
        base_addresses={"api": fake.api_base},
        max_network_retries=2,
    )


@pytest_asyncio.fixture
async def fake_stripe_client(fake_stripe: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    """The real SDK client (aiohttp, 2 retries) for `fake_stripe`; its session is closed after."""
    http_client = stripe.AIOHTTPClient()
    try:
        yield make_client(fake_stripe, http_client)
    finally:
        await http_client.close_async()
