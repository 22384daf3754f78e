"""A local fake of the Stripe API and webhooks that the real `stripe` SDK can talk to."""

from .errors import FakeUsageError, StripeAPIError
from .forms import decode_form
from .server import FakeStripe, Fault
from .state import DEFAULT_API_VERSION, FakeClock, RecordedRequest
from .subscriptions import add_interval
from .webhooks import WebhookSender, encode_event, sign_payload

__all__ = [
    "DEFAULT_API_VERSION",
    "FakeClock",
    "FakeStripe",
    "FakeUsageError",
    "Fault",
    "RecordedRequest",
    "StripeAPIError",
    "WebhookSender",
    "add_interval",
    "decode_form",
    "encode_event",
    "sign_payload",
]
