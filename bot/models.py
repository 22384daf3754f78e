"""Typed records for every domain entity (SPEC §3); repositories return these, never rows."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from bot.clock import parse_iso


class Kind(StrEnum):
    ONE_TIME = "one_time"
    TIMED = "timed"
    SUBSCRIPTION = "subscription"


class ActionType(StrEnum):
    GRANT_ROLE = "grant_role"
    SEND_MESSAGE = "send_message"
    DELIVER_LICENSE = "deliver_license"
    KICK = "kick"
    BAN = "ban"
    CREATE_INVITE = "create_invite"


class Stage(StrEnum):
    ON_PURCHASE = "on_purchase"
    ON_EXPIRE = "on_expire"
    ON_REFUND = "on_refund"
    ON_CHARGEBACK = "on_chargeback"


REVOKE_STAGES = (Stage.ON_EXPIRE, Stage.ON_REFUND, Stage.ON_CHARGEBACK)


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"
    FAILED = "failed"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class OrderSource(StrEnum):
    """Where an order came from (SPEC §3)."""

    DISCORD = "discord"
    WEB = "web"
    API = "api"
    SKU = "sku"
    MANUAL = "manual"


#: `buyer_id` of an order bought on the web without a Discord login, until it is claimed.
NO_BUYER = 0


class EntitlementStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


_DATETIME_FIELDS = {
    "created_at",
    "updated_at",
    "paid_at",
    "starts_at",
    "ends_at",
    "checkout_expires_at",
    "granted_at",
    "revoked_at",
    "next_attempt_at",
    "expires_at",
    "received_at",
    "processed_at",
    "delivered_at",
    "started_at",
    "finished_at",
    "current_period_end",
    "paid_through",
    "ended_at",
    "recorded_at",
}
_BOOL_FIELDS = {
    "allow_promotion_codes",
    "active",
    "archived",
    "removed",
    "waiting_for_member",
    "cancel_at_period_end",
}


_PLAIN, _TIME, _FLAG, _JSON = range(4)


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, int], ...]:
    """(field name, conversion) of each field of the dataclass, worked out once per class."""
    plan = []
    for field in fields(cls):
        if field.name in _DATETIME_FIELDS:
            kind = _TIME
        elif field.name in _BOOL_FIELDS:
            kind = _FLAG
        elif str(field.type).startswith("dict"):  # JSON text columns
            kind = _JSON
        else:
            kind = _PLAIN
        plan.append((field.name, kind))
    return tuple(plan)


class Record:
    """Mixin: build a dataclass from an aiosqlite.Row, converting times, flags and JSON."""

    @classmethod
    def from_row(cls, row: Any) -> Self:
        columns: dict[str, Any] = {}
        for key, value in zip(row.keys(), tuple(row), strict=True):
            columns.setdefault(key, value)  # a repeated name: the first, as row[name] gives
        values: dict[str, Any] = {}
        for name, kind in _plan(cls):  # type: ignore[arg-type]  # a class is hashable
            if name not in columns:
                continue
            value = columns[name]
            if kind == _TIME:
                if value is not None:
                    value = parse_iso(value)
            elif kind == _FLAG:
                value = bool(value)
            elif kind == _JSON:
                value = json.loads(value or "{}")
            values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class Product(Record):
    id: int
    guild_id: int
    name: str
    description: str
    price_amount: int
    currency: str
    kind: str
    interval: str | None
    duration_days: int | None
    trial_days: int | None
    stock: int | None
    stripe_price_id: str | None
    allow_promotion_codes: bool
    active: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    image_url: str | None = None
    max_devices: int = 1  # hardware ids one of its license keys binds to


@dataclass(frozen=True, slots=True)
class Panel:
    """A shop panel message (SPEC §4): its products, in the order they are shown."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int
    title: str
    version: int
    product_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Action(Record):
    id: int
    product_id: int
    type: str
    stage: str
    role_id: int | None
    channel_id: int | None
    message: str | None
    revoke_on: str
    removed: bool
    created_at: datetime

    @property
    def revoke_stages(self) -> set[str]:
        return {part for part in self.revoke_on.split(",") if part}


@dataclass(frozen=True, slots=True)
class Order(Record):
    id: int
    guild_id: int
    buyer_id: int
    recipient_id: int | None
    product_id: int
    amount: int
    currency: str
    status: str
    stripe_session_id: str | None
    stripe_payment_intent_id: str | None
    stripe_subscription_id: str | None
    stripe_customer_id: str | None
    checkout_url: str | None
    checkout_expires_at: datetime | None
    claim_code: str | None
    failure_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    updated_at: datetime
    source: str = OrderSource.DISCORD
    cancel_token: str | None = None


@dataclass(frozen=True, slots=True)
class Entitlement(Record):
    id: int
    guild_id: int
    user_id: int
    product_id: int
    order_id: int | None
    status: str
    starts_at: datetime
    ends_at: datetime | None
    end_reason: str | None
    created_at: datetime
    updated_at: datetime
    cycle: int = 0  # bumped each time a lapsed subscription is restored


@dataclass(frozen=True, slots=True)
class RoleGrant(Record):
    id: int
    guild_id: int
    user_id: int
    role_id: int
    entitlement_id: int
    status: str
    granted_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Job(Record):
    id: int
    guild_id: int
    user_id: int
    kind: str
    order_id: int | None
    entitlement_id: int | None
    action_id: int | None
    payload: dict[str, Any]
    dedupe_key: str | None
    status: str
    waiting_for_member: bool
    attempts: int
    next_attempt_at: datetime
    expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookEvent(Record):
    id: str
    type: str
    created: int
    payload: str
    status: str
    attempts: int
    order_id: int | None
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry(Record):
    id: int
    guild_id: int | None
    user_id: int | None
    actor_id: int | None
    kind: str
    detail: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription(Record):
    """A Stripe subscription as last seen in its events (bot/lifecycle.py)."""

    stripe_subscription_id: str
    status: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    paid_through: datetime | None
    ended_at: datetime | None
    last_event_created: int
    last_event_id: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentReversal(Record):
    """A full refund or a dispute of one payment intent."""

    stripe_payment_intent_id: str
    kind: str  # refund | dispute
    stripe_object_id: str
    event_id: str
    created: int
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class PaidInvoice(Record):
    """A paid invoice of a subscription, as its `invoice.paid` event told us."""

    stripe_invoice_id: str
    stripe_subscription_id: str
    amount_paid: int
    paid_at: datetime
    recorded_at: datetime
