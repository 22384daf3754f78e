"""The integration API's request and response bodies (pydantic); the OpenAPI document's
components are generated from these models (bot/api/router.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from bot.models import ActionType, Kind, OrderStatus, Stage

MAX_SNOWFLAKE = 2**63 - 1
MAX_ID = 2**63 - 1


def _snowflake(value: object) -> object:
    """Discord ids travel as strings (JavaScript loses digits past 2**53); integers are
    accepted too."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    if isinstance(value, bool):
        raise ValueError("must be a Discord id")
    return value


#: A Discord id in a request: a string of digits (or an integer).
Snowflake = Annotated[
    int,
    BeforeValidator(_snowflake),
    Field(ge=1, le=MAX_SNOWFLAKE),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,20}$"},
                {"type": "integer", "minimum": 1, "maximum": MAX_SNOWFLAKE},
            ],
            "description": "A Discord id (snowflake), preferably as a string.",
        }
    ),
]
#: A Discord id in a response: always a string of digits.
SnowflakeStr = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

ActionTypeName = Literal[
    "grant_role", "send_message", "deliver_license", "kick", "ban", "create_invite"
]
StageName = Literal["on_purchase", "on_expire", "on_refund", "on_chargeback"]
RevokeStage = Literal["on_expire", "on_refund", "on_chargeback"]
KindName = Literal["one_time", "timed", "subscription"]
IntervalName = Literal["day", "week", "month", "year"]
OrderStatusName = Literal["pending", "paid", "expired", "failed", "refunded", "disputed"]
assert set(ActionTypeName.__args__) == set(ActionType)  # type: ignore[attr-defined]
assert set(StageName.__args__) == set(Stage)  # type: ignore[attr-defined]
assert set(KindName.__args__) == set(Kind)  # type: ignore[attr-defined]
assert set(OrderStatusName.__args__) == set(OrderStatus)  # type: ignore[attr-defined]


class Input(BaseModel):
    """A request body or parameter set: unknown fields are refused (usually typos)."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


# errors ------------------------------------------------------------------------------


class ErrorBody(Output):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`.")
    message: str = Field(description="What went wrong, for a person.")
    details: Any = Field(default=None, description="More about it (e.g. the invalid fields).")


class ErrorResponse(Output):
    """Every error the API answers, whatever its status."""

    error: ErrorBody


# parameters --------------------------------------------------------------------------


class Page(Input):
    limit: int = Field(default=50, ge=1, le=100, description="At most this many items.")
    after: int = Field(
        default=0, ge=0, le=MAX_ID, description="Only items with an id above this (a cursor)."
    )


class OrderFilter(Page):
    guild_id: Snowflake | None = None
    user_id: Snowflake | None = Field(default=None, description="Buyer or recipient.")
    status: OrderStatusName | None = None


class GuildPath(Input):
    guild_id: Snowflake


class MemberPath(Input):
    guild_id: Snowflake
    user_id: Snowflake


class IdPath(Input):
    id: Id


# products ----------------------------------------------------------------------------


class ProductOut(Output):
    id: int
    guild_id: SnowflakeStr
    name: str
    description: str
    price_amount: int = Field(description="In the currency's minor units (cents).")
    currency: str
    kind: KindName
    interval: IntervalName | None
    duration_days: int | None
    trial_days: int | None
    stock: int | None = Field(description="Units left to sell; null: unlimited.")
    units_left: int | None = Field(description="Net of open checkouts; null: unlimited.")
    allow_promotion_codes: bool
    active: bool
    image_url: str | None
    created_at: datetime
    updated_at: datetime


class ProductList(Output):
    data: list[ProductOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: last.")


class ProductCreate(Input):
    name: str = Field(min_length=1, max_length=80)
    price_amount: int = Field(ge=1, le=99_999_999, description="Minor units (cents).")
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    kind: KindName = "one_time"
    interval: IntervalName | None = None
    duration_days: int | None = Field(default=None, ge=1, le=3650)
    trial_days: int | None = Field(default=None, ge=1, le=730)
    description: str | None = Field(default=None, max_length=500)
    stock: int | None = Field(default=None, ge=0, le=1_000_000)
    allow_promotion_codes: bool = False
    image_url: str | None = Field(default=None, max_length=1000)
    role_id: Snowflake | None = Field(
        default=None, description="Buyers get this role (a grant_role action on purchase)."
    )


class ProductPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    price_amount: int | None = Field(default=None, ge=1, le=99_999_999)
    description: str | None = Field(default=None, max_length=500)
    stock: int | None = Field(default=None, ge=0, le=1_000_000)
    active: bool | None = None
    allow_promotion_codes: bool | None = None
    image_url: str | None = Field(default=None, max_length=1000)
    role_id: Snowflake | None = None


# actions -----------------------------------------------------------------------------


class ActionIn(Input):
    """One action, PayNow's shape."""

    action_type: ActionTypeName
    execution_stage: StageName
    revocation_stages: list[RevokeStage] | None = Field(
        default=None,
        max_length=3,
        description="For grant_role: the stages that take the role back (default: all).",
    )
    role_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    message: str | None = Field(default=None, max_length=1800)


class ActionsPut(RootModel[list[ActionIn]]):
    """The product's whole new action list."""

    root: list[ActionIn] = Field(max_length=25)


class ActionOut(Output):
    id: int
    action_type: ActionTypeName
    execution_stage: StageName
    revocation_stages: list[RevokeStage]
    role_id: SnowflakeStr | None
    channel_id: SnowflakeStr | None
    message: str | None


class ActionList(Output):
    data: list[ActionOut]


# orders ------------------------------------------------------------------------------


class OrderOut(Output):
    id: int
    guild_id: SnowflakeStr
    product_id: int
    buyer_id: SnowflakeStr | None = Field(description="null: bought without a Discord account.")
    user_id: SnowflakeStr | None = Field(description="Who gets access; null: not claimed yet.")
    amount: int
    currency: str
    status: OrderStatusName
    source: str
    reference: str | None = Field(description="The reference given to POST /orders.")
    claim_code: str | None = Field(description="Shown while the order is unclaimed.")
    created_at: datetime
    paid_at: datetime | None


class OrderList(Output):
    data: list[OrderOut]
    next_after: int | None


class AttemptOut(Output):
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None = Field(description="completed, retry, waiting or failed.")
    error: str | None


class DeliveryOut(Output):
    id: int
    kind: str
    status: Literal["pending", "running", "completed", "failed", "canceled", "expired"]
    user_id: SnowflakeStr
    stage: str | None
    action_id: int | None
    waiting_for_member: bool
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    history: list[AttemptOut]


class EntitlementOut(Output):
    id: int
    product_id: int
    product_name: str
    order_id: int | None = Field(description="null: given by an admin.")
    status: Literal["active", "expired", "revoked"]
    starts_at: datetime
    ends_at: datetime | None = Field(description="null: forever (or until it is revoked).")
    end_reason: str | None


class OrderDetail(OrderOut):
    entitlement: EntitlementOut | None
    deliveries: list[DeliveryOut]


class OrderCreate(Input):
    """A purchase made elsewhere, to be delivered like one made here."""

    guild_id: Snowflake
    product_id: Id
    user_id: Snowflake | None = Field(
        default=None, description="Who gets access; omit to get a claim code for /claim."
    )
    reference: str = Field(min_length=1, max_length=200, description="Your id of the purchase.")


class EntitlementList(Output):
    data: list[EntitlementOut]


# guilds ------------------------------------------------------------------------------


class RoleOut(Output):
    id: SnowflakeStr
    name: str
    position: int
    managed: bool
    assignable: bool = Field(description="Whether the bot can give this role.")
    problem: str | None = Field(description="Why it cannot, if not.")


class RoleList(Output):
    data: list[RoleOut]


class ChannelOut(Output):
    id: SnowflakeStr
    name: str
    position: int
    parent_id: SnowflakeStr | None


class ChannelList(Output):
    data: list[ChannelOut]
