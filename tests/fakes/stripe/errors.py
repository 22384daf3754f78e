"""Stripe-shaped API errors raised by the fake's handlers and rendered as Stripe's error JSON."""

from __future__ import annotations

from typing import Any

_DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeAPIError(Exception):
    """An error the fake answers with `{"error": {...}}` and an HTTP status, as Stripe does."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Describe the error; `extra` adds keys such as `decline_code` to the error object."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self, request_id: str) -> dict[str, Any]:
        """Return the JSON body Stripe sends for this error."""
        error: dict[str, Any] = {"message": self.message, "type": self.error_type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = _DOC_BASE + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


class FakeUsageError(RuntimeError):
    """A test called a lifecycle helper in a state where Stripe could not do that."""


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeAPIError:
    """A 400 `invalid_request_error`, usually about one parameter."""
    return StripeAPIError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeAPIError:
    """A 400 for a required parameter that was not sent."""
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(object_name: str, object_id: str, param: str = "id") -> StripeAPIError:
    """`resource_missing`, e.g. "No such checkout.session: 'cs_test_x'": a 404 for the object in
    the URL (`param="id"`), a 400 for an object named by a request parameter."""
    return StripeAPIError(
        404 if param == "id" else 400,
        f"No such {object_name}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unrecognized_url(method: str, path: str) -> StripeAPIError:
    """A 404 for a route Stripe (or this fake) does not know."""
    return StripeAPIError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
    )


def bad_api_key(key: str) -> StripeAPIError:
    """A 401 for a missing or wrong secret key; the key is masked like Stripe does."""
    if not key:
        return StripeAPIError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
    return StripeAPIError(401, f"Invalid API Key provided: {masked}")


def idempotency_mismatch(key: str) -> StripeAPIError:
    """A 400 `idempotency_error` for a key reused with different parameters."""
    return StripeAPIError(
        400,
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
        error_type="idempotency_error",
    )


def idempotency_in_flight(key: str) -> StripeAPIError:
    """A 409 for a key whose first request is still being processed."""
    return StripeAPIError(
        409,
        "There is currently another in-progress request using this Idempotent Key (that "
        f"probably means you submitted twice, and the other request is still going through): "
        f"{key}. Please try again later.",
        error_type="idempotency_error",
    )


def card_declined(decline_code: str = "generic_decline") -> StripeAPIError:
    """A 402 `card_error` as Stripe returns for a declined card."""
    return StripeAPIError(
        402,
        "Your card was declined.",
        error_type="card_error",
        code="card_declined",
        extra={"decline_code": decline_code},
    )
