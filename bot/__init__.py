"""shopbot: a self-hosted Discord bot with an embedded Stripe shop."""

__version__ = "0.1.0"
