"""Domain errors: each carries the message shown to the user, ephemerally."""

from __future__ import annotations


class ShopError(Exception):
    """An expected failure with a message safe to show to the user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class InvalidInput(ShopError):
    """The user gave a value we cannot accept; nothing was changed."""


class NotFound(ShopError):
    """The thing the user named does not exist (in this guild)."""


class Forbidden(ShopError):
    """The caller is not allowed to do this."""


class Conflict(ShopError):
    """The request clashes with existing state (duplicate, already active, claimed)."""


class TooManyAttempts(ShopError):
    """The caller has tried too often; nothing was looked at or changed."""


class PaymentError(ShopError):
    """Stripe refused or could not be reached; nothing was half-done."""


class EventRejected(Exception):
    """The Stripe event is authentic but cannot be applied (no order of ours, a mismatch)."""


class ForeignEvent(Exception):
    """The event concerns another install sharing our Stripe account: acknowledged, ignored."""


class ConfigError(Exception):
    """Configuration is missing or invalid; the message names the key."""


# Delivery outcomes raised by the Discord adapter and handled by the worker.
class DeliveryError(Exception):
    """Base for failures while executing a delivery job."""


class MemberMissing(DeliveryError):
    """The member is not in the guild (Discord 10007); wait for them to join."""


class PermanentFailure(DeliveryError):
    """Retrying will not help (missing permissions, role hierarchy, unknown role)."""


class MessageGone(PermanentFailure):
    """The message or its channel no longer exists (Discord 10008 / 10003)."""


class TransientFailure(DeliveryError):
    """Discord 5xx, network trouble or a rate limit: retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
