"""Discord's monetization surface: SKUs, entitlements (listing, consuming, test entitlements)
and their gateway events (ENTITLEMENT_CREATE/UPDATE/DELETE, sent to shard 0 only).

Test-facing API on FakeDiscord: `add_sku(name, type)`; `grant_entitlement(sku_id,
user_id=… | guild_id=…)` for a real purchase (type 8 APPLICATION_SUBSCRIPTION or 1 PURCHASE);
`update_entitlement(id, ends_at=…)`; `refund_entitlement(id)` (deleted, ENTITLEMENT_DELETE).
`dispatch=False` changes Discord's state without telling the bot (it was offline).
`fake.consumes` lists every accepted `POST …/consume`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import responses as R
from .models import snowflake
from .responses import DiscordHTTPError, json_response, no_content

if TYPE_CHECKING:
    from .server import FakeDiscord

UNKNOWN_ENTITLEMENT = ("Unknown Entitlement", 10029)
UNKNOWN_SKU = ("Unknown SKU", 10046)
UNKNOWN_USER = ("Unknown User", 10013)
UNKNOWN_APPLICATION = ("Unknown Application", 10002)
NOT_CONSUMABLE = ("Entitlement is not consumable", 50035)

#: SKU types (FACTS.md): 2 durable, 3 consumable, 5 subscription, 6 subscription group.
DURABLE, CONSUMABLE, SUBSCRIPTION, SUBSCRIPTION_GROUP = 2, 3, 5, 6
#: Entitlement types: 1 PURCHASE, 4 TEST_MODE_PURCHASE, 8 APPLICATION_SUBSCRIPTION.
PURCHASE, TEST_MODE_PURCHASE, APPLICATION_SUBSCRIPTION = 1, 4, 8
#: SKU flags: AVAILABLE, GUILD_SUBSCRIPTION, USER_SUBSCRIPTION.
AVAILABLE, GUILD_SUBSCRIPTION, USER_SUBSCRIPTION = 1 << 2, 1 << 7, 1 << 8
OWNER_GUILD, OWNER_USER = 1, 2


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


class EntitlementMixin:
    """Mixed into FakeDiscord: SKUs and entitlements of the one application."""

    skus: dict[int, dict[str, Any]]
    entitlements: dict[int, dict[str, Any]]
    consumes: list[int]
    application_id: int

    def _now(self: FakeDiscord) -> dt.datetime:  # type: ignore[misc]
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    # ------------------------------------------------------------- test-facing
    def add_sku(
        self, name: str, type: int = SUBSCRIPTION, *, guild: bool = False
    ) -> dict[str, Any]:
        """An SKU as made in the Developer Portal (subscriptions: user ones by default)."""
        flags = AVAILABLE
        if type == SUBSCRIPTION:
            flags |= GUILD_SUBSCRIPTION if guild else USER_SUBSCRIPTION
        sku = {
            "id": str(snowflake()),
            "type": type,
            "application_id": str(self.application_id),
            "name": name,
            "slug": name.lower().replace(" ", "-"),
            "flags": flags,
        }
        self.skus[int(sku["id"])] = sku
        return sku

    def grant_entitlement(
        self: FakeDiscord,  # type: ignore[misc]
        sku_id: int | str,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        ends_at: dt.datetime | None = None,
        test: bool = False,
        dispatch: bool = True,
    ) -> dict[str, Any]:
        """A purchase (or a test entitlement): stored, and ENTITLEMENT_CREATE sent."""
        sku = self.skus.get(int(sku_id))
        if sku is None:
            raise KeyError(f"fake Discord has no SKU {sku_id}")
        if (user_id is None) == (guild_id is None):
            raise ValueError("an entitlement is owned by a user or a guild")
        if test:
            kind = TEST_MODE_PURCHASE
        else:
            kind = APPLICATION_SUBSCRIPTION if sku["type"] == SUBSCRIPTION else PURCHASE
        entitlement: dict[str, Any] = {
            "id": str(snowflake()),
            "sku_id": sku["id"],
            "application_id": str(self.application_id),
            "type": kind,
            "deleted": False,
            "starts_at": None if test else _iso(self._now()),
            "ends_at": None if ends_at is None else _iso(ends_at),
            "consumed": False,
        }
        if user_id is not None:
            entitlement["user_id"] = str(user_id)
        if guild_id is not None:
            entitlement["guild_id"] = str(guild_id)
        self.entitlements[int(entitlement["id"])] = entitlement
        if dispatch:
            self.dispatch_shard0("ENTITLEMENT_CREATE", entitlement)
        self._notify()
        return entitlement

    def update_entitlement(
        self: FakeDiscord,  # type: ignore[misc]
        entitlement_id: int | str,
        *,
        ends_at: dt.datetime | None,
        dispatch: bool = True,
    ) -> dict[str, Any]:
        """A subscription was canceled (or renewed): `ends_at` changes; ENTITLEMENT_UPDATE."""
        entitlement = self.entitlements[int(entitlement_id)]
        entitlement["ends_at"] = None if ends_at is None else _iso(ends_at)
        if dispatch:
            self.dispatch_shard0("ENTITLEMENT_UPDATE", entitlement)
        self._notify()
        return entitlement

    def refund_entitlement(
        self: FakeDiscord,  # type: ignore[misc]
        entitlement_id: int | str,
        *,
        dispatch: bool = True,
    ) -> dict[str, Any]:
        """Discord refunded it (or removed it): `deleted` true; ENTITLEMENT_DELETE."""
        entitlement = self.entitlements[int(entitlement_id)]
        entitlement["deleted"] = True
        if dispatch:
            self.dispatch_shard0("ENTITLEMENT_DELETE", entitlement)
        self._notify()
        return entitlement

    def dispatch_shard0(self: FakeDiscord, event: str, data: dict[str, Any]) -> int | None:  # type: ignore[misc]
        """Monetization events go to shard 0 only."""
        return self.gateway.dispatch_to(self.gateway.sessions.get(0), event, dict(data))

    def active_entitlements(self, user_id: int, guild_id: int | None) -> list[dict[str, Any]]:
        """What an interaction carries: live entitlements of the user and of the guild."""
        now = self._now()  # type: ignore[misc]
        return [
            dict(e)
            for e in self.entitlements.values()
            if not e["deleted"]
            and (e["ends_at"] is None or dt.datetime.fromisoformat(e["ends_at"]) > now)
            and (
                e.get("user_id") == str(user_id)
                or (guild_id is not None and e.get("guild_id") == str(guild_id))
            )
        ]


class EntitlementRoutes:
    """`/applications/{id}/skus` and `/applications/{id}/entitlements…` (bot token)."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        base = "/applications/{application_id}"
        one = base + "/entitlements/{entitlement_id}"
        return [
            web.get(base + "/skus", self.list_skus),
            web.get(base + "/entitlements", self.list_entitlements),
            web.post(base + "/entitlements", self.create_test),
            web.get(one, self.get_one),
            web.delete(one, self.delete_test),
            web.post(one + "/consume", self.consume),
        ]

    def _app(self, request: web.Request) -> None:
        if request.match_info["application_id"] != str(self.fake.application_id):
            raise DiscordHTTPError(404, UNKNOWN_APPLICATION)

    def _entitlement(self, request: web.Request) -> dict[str, Any]:
        self._app(request)
        found = self.fake.entitlements.get(_id(request.match_info["entitlement_id"]))
        if found is None:
            raise DiscordHTTPError(404, UNKNOWN_ENTITLEMENT)
        return found

    async def list_skus(self, request: web.Request) -> web.Response:
        """GET …/skus: every SKU of the app (subscription groups included, as Discord does)."""
        self._app(request)
        return json_response(list(self.fake.skus.values()))

    async def list_entitlements(self, request: web.Request) -> web.Response:
        """GET …/entitlements: filtered, then paged by snowflake (`after`: ascending from it;
        `before`: the nearest ones below it). Deleted ones only with exclude_deleted=false."""
        self._app(request)
        q = request.query
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= 100:
            raise DiscordHTTPError(400, R.INVALID_FORM_BODY)
        rows = sorted(self.fake.entitlements.values(), key=lambda e: int(e["id"]))
        if "user_id" in q:
            rows = [e for e in rows if e.get("user_id") == q["user_id"]]
        if "guild_id" in q:
            rows = [e for e in rows if e.get("guild_id") == q["guild_id"]]
        if q.get("sku_ids"):
            wanted = set(q["sku_ids"].split(","))
            rows = [e for e in rows if e["sku_id"] in wanted]
        if _flag(q.get("exclude_deleted"), default=True):
            rows = [e for e in rows if not e["deleted"]]
        if _flag(q.get("exclude_ended"), default=False):
            now = self.fake._now()
            rows = [
                e
                for e in rows
                if e["ends_at"] is None or dt.datetime.fromisoformat(e["ends_at"]) > now
            ]
        if "before" in q:
            rows = [e for e in rows if int(e["id"]) < _id(q["before"])][-limit:][::-1]
        else:
            after = _id(q.get("after", "0"))
            rows = [e for e in rows if int(e["id"]) > after][:limit]
        return json_response([dict(e) for e in rows])

    async def get_one(self, request: web.Request) -> web.Response:
        return json_response(dict(self._entitlement(request)))

    async def create_test(self, request: web.Request) -> web.Response:
        """POST …/entitlements {sku_id, owner_id, owner_type}: a test entitlement."""
        self._app(request)
        body = request[R.BODY_KEY].json
        if not isinstance(body, dict) or body.get("owner_type") not in (OWNER_GUILD, OWNER_USER):
            raise DiscordHTTPError(400, R.INVALID_FORM_BODY)
        try:
            sku_id, owner_id = _id(str(body["sku_id"])), _id(str(body["owner_id"]))
        except KeyError:
            raise DiscordHTTPError(400, R.INVALID_FORM_BODY) from None
        if sku_id not in self.fake.skus:
            raise DiscordHTTPError(404, UNKNOWN_SKU)
        if body["owner_type"] == OWNER_GUILD:
            if owner_id not in self.fake.guilds:
                raise DiscordHTTPError(404, R.UNKNOWN_GUILD)
            made = self.fake.grant_entitlement(sku_id, guild_id=owner_id, test=True)
        else:
            if owner_id not in self.fake.users:
                raise DiscordHTTPError(404, UNKNOWN_USER)
            made = self.fake.grant_entitlement(sku_id, user_id=owner_id, test=True)
        return json_response(dict(made))

    async def delete_test(self, request: web.Request) -> web.Response:
        """DELETE …/entitlements/{id}: only a live test entitlement can be deleted."""
        entitlement = self._entitlement(request)
        if entitlement["type"] != TEST_MODE_PURCHASE or entitlement["deleted"]:
            raise DiscordHTTPError(404, UNKNOWN_ENTITLEMENT)
        self.fake.refund_entitlement(entitlement["id"])
        return no_content()

    async def consume(self, request: web.Request) -> web.Response:
        """POST …/consume: a one-time (consumable) entitlement is used up."""
        entitlement = self._entitlement(request)
        sku = self.fake.skus.get(int(entitlement["sku_id"]))
        if sku is None or sku["type"] != CONSUMABLE:
            raise DiscordHTTPError(400, NOT_CONSUMABLE)
        entitlement["consumed"] = True
        self.fake.consumes.append(int(entitlement["id"]))
        return no_content()


def _id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DiscordHTTPError(400, R.INVALID_FORM_BODY) from None


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in ("1", "true")
