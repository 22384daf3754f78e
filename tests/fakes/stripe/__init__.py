"""A local fake of the Stripe API and webhooks that the real `stripe` SDK can talk to.

Browser tests: `FakeStripe(hosted_checkout=True)` gives each Checkout Session a payable page at
its `url` (hosted.py); `fake.push_webhooks(url, secret)` delivers new events by itself,
signed and retried like Stripe (push.py); `fake.expire_due_sessions()` expires open sessions
whose `expires_at` passed on the fake clock.
"""

from .errors import FakeUsageError, StripeAPIError
from .forms import decode_form
from .push import DeliveryAttempt
from .server import FakeStripe, Fault
from .state import DEFAULT_API_VERSION, FakeClock, RecordedRequest
from .subscriptions import add_interval
from .webhooks import WebhookSender, encode_event, sign_payload

__all__ = [
    "DEFAULT_API_VERSION",
    "DeliveryAttempt",
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
