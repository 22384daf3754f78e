"""Shared fixtures: the local fakes of Stripe and Discord."""

from tests.fakes.stripe.fixtures import fake_stripe, fake_stripe_client  # noqa: F401
