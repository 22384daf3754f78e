"""Domain errors: each carries the message shown to the user, ephemerally."""

from __future__ import annotations

from bot.i18n import Text


class ShopError(Exception):
    """An expected failure with a message safe to show to the user.

    The message is English (marked with `N_()`) with its placeholders' values, and is
    translated when it is shown (`user_message`, in the locale current then: the reader's
    interaction), never when it is raised: `InvalidInput(N_("No product {name}."),
    name=ref)`. `str(exc)` is the English text (logs)."""

    def __init__(self, user_message: str | Text, /, **params: object) -> None:
        self.text = user_message if isinstance(user_message, Text) else Text(user_message, **params)
        super().__init__(self.text.english())

    @property
    def user_message(self) -> str:
        """The message in the current locale."""
        return str(self.text)


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
