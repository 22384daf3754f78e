"""The /api/v1 routes over licenses and outbound webhook endpoints (SPEC §5c): thin
translations of `LicenseService` (bot/licenses.py) and `WebhookService`
(bot/webhooks_out.py) into the API's models, errors and scopes."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from bot.api.router import Api, ApiError, Call, Route
from bot.api.schemas import IdPath, Input, Output, SnowflakeStr
from bot.licenses import MAX_KEY, LicenseInputError, LicenseService, RateLimited
from bot.webhooks_out import EVENTS, EndpointView, WebhookInputError, WebhookService

LicenseKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY)]
LicenseStatus = Literal["active", "revoked", "expired", "unknown", "device_limit"]


class LicenseValidate(Input):
    key: LicenseKey = Field(description="The license key as the buyer got it.")
    hwid: LicenseKey | None = Field(
        default=None,
        description="The machine's id: the first ones bind, up to the product's max_devices.",
    )


class LicenseCheckOut(Output):
    valid: bool
    status: LicenseStatus
    product_id: int | None
    user_id: SnowflakeStr | None
    expires_at: datetime | None = Field(description="null: does not expire.")


class LicensePath(Input):
    key: LicenseKey


class LicenseReset(Output):
    key: str
    reset: bool = Field(description="Every device of the key was unbound.")


class WebhookCreate(Input):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL to POST to.")
    events: list[str] = Field(
        min_length=1, max_length=len(EVENTS), description="Any of: " + ", ".join(EVENTS)
    )


class WebhookOut(Output):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was switched off, if it was.")
    created_at: datetime


class WebhookCreated(Output):
    id: int
    url: str
    events: list[str]
    secret: str = Field(description="Signs every delivery; shown only in this answer.")


class WebhookList(Output):
    data: list[WebhookOut]


class WebhookDeleted(Output):
    id: int
    deleted: bool


class WebhookAttemptOut(Output):
    id: int
    event_id: str
    event_type: str
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None
    attempted_at: datetime


class WebhookAttemptList(Output):
    data: list[WebhookAttemptOut]


def _endpoint(view: EndpointView) -> WebhookOut:
    return WebhookOut(
        id=view.id,
        url=view.url,
        events=list(view.events),
        enabled=view.enabled,
        disabled_reason=view.disabled_reason,
        created_at=view.created_at,
    )


def license_routes(licenses: LicenseService) -> Callable[[Api], None]:
    """POST /licenses/validate and /licenses/{key}/reset (scope `licenses`)."""

    async def validate(call: Call) -> tuple[int, LicenseCheckOut]:
        body: LicenseValidate = call.body
        try:
            checked = await licenses.validate(body.key, body.hwid, call.remote)
        except LicenseInputError as exc:
            raise ApiError(422, str(exc)) from None
        if isinstance(checked, RateLimited):
            wait = max(1, math.ceil(checked.retry_after))
            raise ApiError(
                429,
                f"Too many validations for this {checked.scope}; try again in {wait} s.",
                details={"scope": checked.scope},
                headers={"Retry-After": str(wait)},
            )
        return 200, LicenseCheckOut(
            valid=checked.valid,
            status=checked.status,  # type: ignore[arg-type]  # one of LicenseStatus
            product_id=checked.product_id,
            user_id=None if checked.user_id is None else str(checked.user_id),
            expires_at=checked.expires_at,
        )

    async def reset(call: Call) -> tuple[int, LicenseReset]:
        key = call.path.key
        if not await licenses.reset(key):
            raise ApiError(404, "No order was given this license key.")
        return 200, LicenseReset(key=key, reset=True)

    def add(api: Api) -> None:
        # fmt: off
        api.add(Route("POST", "/licenses/validate", validate,
                      "Is this key valid (on this machine)? Binds the first hwids.",
                      {200: LicenseCheckOut}, body_model=LicenseValidate, tag="licenses"))
        api.add(Route("POST", "/licenses/{key}/reset", reset,
                      "Unbind every device of a key.", {200: LicenseReset}, LicensePath,
                      tag="licenses"))
        # fmt: on

    return add


def webhook_routes(webhooks: WebhookService) -> Callable[[Api], None]:
    """GET|POST /webhooks, DELETE /webhooks/{id}, GET /webhooks/{id}/deliveries."""

    async def list_endpoints(call: Call) -> tuple[int, WebhookList]:
        return 200, WebhookList(data=[_endpoint(view) for view in await webhooks.list()])

    async def create(call: Call) -> tuple[int, WebhookCreated]:
        body: WebhookCreate = call.body
        try:
            view, secret = await webhooks.create(body.url, body.events)
        except WebhookInputError as exc:
            raise ApiError(422, str(exc)) from None
        return 201, WebhookCreated(
            id=view.id, url=view.url, events=list(view.events), secret=secret
        )

    async def delete(call: Call) -> tuple[int, WebhookDeleted]:
        if not await webhooks.delete(call.path.id):
            raise ApiError(404, f"There is no webhook endpoint {call.path.id}.")
        return 200, WebhookDeleted(id=call.path.id, deleted=True)

    async def deliveries(call: Call) -> tuple[int, WebhookAttemptList]:
        attempts = await webhooks.deliveries(call.path.id)
        if attempts is None:
            raise ApiError(404, f"There is no webhook endpoint {call.path.id}.")
        return 200, WebhookAttemptList(
            data=[
                WebhookAttemptOut(
                    id=a.id,
                    event_id=a.event_id,
                    event_type=a.event_type,
                    status_code=a.status_code,
                    error=a.error,
                    attempted_at=a.attempted_at,
                )
                for a in attempts
            ]
        )

    def add(api: Api) -> None:
        # fmt: off
        api.add(Route("GET", "/webhooks", list_endpoints, "Outbound webhook endpoints.",
                      {200: WebhookList}, tag="webhooks"))
        api.add(Route("POST", "/webhooks", create,
                      "Add an endpoint; the answer carries its signing secret, once.",
                      {201: WebhookCreated}, body_model=WebhookCreate, tag="webhooks"))
        api.add(Route("DELETE", "/webhooks/{id}", delete,
                      "Remove an endpoint (deliveries not sent yet are dropped).",
                      {200: WebhookDeleted}, IdPath, tag="webhooks"))
        api.add(Route("GET", "/webhooks/{id}/deliveries", deliveries,
                      "An endpoint's latest delivery attempts, newest first.",
                      {200: WebhookAttemptList}, IdPath, tag="webhooks"))
        # fmt: on

    return add
