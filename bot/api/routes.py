"""The routes of /api/v1 (SPEC §5c) and `build_api`, which the web server mounts.

A new route is one `api.add(Route(...))` with its handler: e.g. the licenses and outbound
webhooks routes add themselves through `extra` (the scope of /licenses/* is `licenses`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web

from bot.api import schemas as s
from bot.api.keys import ApiKeys, RateLimiter
from bot.api.router import PREFIX, Api, Call, Header, Route
from bot.api.service import ApiService

IDEMPOTENCY = Header(
    "Idempotency-Key",
    "Your unique id of this purchase: the same key with the same body answers the same "
    "order again; with another body it is a 409.",
)


def add_core_routes(api: Api, service: ApiService) -> None:
    """Products, actions, orders, deliveries, entitlements, roles and channels."""

    async def list_products(call: Call) -> tuple[int, s.ProductList]:
        return 200, await service.products(call.path.guild_id, call.query)

    async def create_product(call: Call) -> tuple[int, s.ProductOut]:
        return 201, await service.create_product(call.path.guild_id, call.body)

    async def get_product(call: Call) -> tuple[int, s.ProductOut]:
        return 200, await service.product(call.path.id)

    async def patch_product(call: Call) -> tuple[int, s.ProductOut]:
        return 200, await service.edit_product(call.path.id, call.body)

    async def delete_product(call: Call) -> tuple[int, s.ProductOut]:
        return 200, await service.remove_product(call.path.id)

    async def get_actions(call: Call) -> tuple[int, s.ActionList]:
        return 200, await service.product_actions(call.path.id)

    async def put_actions(call: Call) -> tuple[int, s.ActionList]:
        return 200, await service.replace_actions(call.path.id, call.body)

    async def list_orders(call: Call) -> tuple[int, s.OrderList]:
        return 200, await service.orders(call.query)

    async def get_order(call: Call) -> tuple[int, s.OrderDetail]:
        return 200, await service.order(call.path.id)

    async def create_order(call: Call) -> tuple[int, str]:
        return await service.create_order(call.key, call.headers["Idempotency-Key"], call.body)

    async def revoke_order(call: Call) -> tuple[int, s.OrderDetail]:
        return 200, await service.revoke_order(call.path.id)

    async def retry_delivery(call: Call) -> tuple[int, s.DeliveryOut]:
        return 200, await service.retry_delivery(call.path.id)

    async def entitlements(call: Call) -> tuple[int, s.EntitlementList]:
        return 200, await service.entitlements(call.path.guild_id, call.path.user_id)

    async def roles(call: Call) -> tuple[int, s.RoleList]:
        return 200, service.roles(call.path.guild_id)

    async def channels(call: Call) -> tuple[int, s.ChannelList]:
        return 200, service.channels(call.path.guild_id)

    guild, product, order = s.GuildPath, s.IdPath, s.IdPath
    # fmt: off
    routes = (
        Route("GET", "/guilds/{guild_id}/products", list_products, "A guild's products.",
              {200: s.ProductList}, guild, s.Page, tag="products"),
        Route("POST", "/guilds/{guild_id}/products", create_product, "Create a product.",
              {201: s.ProductOut}, guild, body_model=s.ProductCreate, errors=(409,),
              tag="products"),
        Route("GET", "/products/{id}", get_product, "One product.", {200: s.ProductOut},
              product, tag="products"),
        Route("PATCH", "/products/{id}", patch_product, "Change a product.",
              {200: s.ProductOut}, product, body_model=s.ProductPatch, errors=(409,),
              tag="products"),
        Route("DELETE", "/products/{id}", delete_product,
              "Archive a product (no longer sold; its orders stay).", {200: s.ProductOut},
              product, tag="products"),
        Route("GET", "/products/{id}/actions", get_actions, "A product's actions.",
              {200: s.ActionList}, product, tag="products"),
        Route("PUT", "/products/{id}/actions", put_actions,
              "Replace a product's whole action list; one invalid item changes nothing.",
              {200: s.ActionList}, product, body_model=s.ActionsPut, tag="products"),
        Route("GET", "/orders", list_orders, "Orders, oldest first.", {200: s.OrderList},
              query_model=s.OrderFilter, tag="orders"),
        Route("POST", "/orders", create_order,
              "Record a purchase made elsewhere and deliver it.", {201: s.OrderDetail},
              body_model=s.OrderCreate, headers=(IDEMPOTENCY,), errors=(404, 409),
              tag="orders"),
        Route("GET", "/orders/{id}", get_order,
              "One order with its deliveries and each attempt.", {200: s.OrderDetail}, order,
              tag="orders"),
        Route("POST", "/orders/{id}/revoke", revoke_order,
              "End the order's access (roles the bot gave are taken back).",
              {200: s.OrderDetail}, order, errors=(409,), tag="orders"),
        Route("POST", "/deliveries/{id}/retry", retry_delivery,
              "Queue a failed or expired delivery again.", {200: s.DeliveryOut}, s.IdPath,
              errors=(409,), tag="orders"),
        Route("GET", "/guilds/{guild_id}/members/{user_id}/entitlements", entitlements,
              "What a member holds, until when, from which orders.",
              {200: s.EntitlementList}, s.MemberPath, tag="members"),
        Route("GET", "/guilds/{guild_id}/roles", roles, "The guild's roles.",
              {200: s.RoleList}, guild, tag="guilds"),
        Route("GET", "/guilds/{guild_id}/channels", channels, "The guild's text channels.",
              {200: s.ChannelList}, guild, tag="guilds"),
    )
    # fmt: on
    for route in routes:
        api.add(route)


def build_api(
    service: ApiService,
    keys: ApiKeys,
    limiter: RateLimiter,
    extra: Iterable[Callable[[Api], None]] = (),
) -> Api:
    """The /api/v1 route table; `extra` adds further routes (licenses, webhooks)."""
    api = Api(keys, limiter)
    add_core_routes(api, service)
    for add in extra:
        add(api)
    return api


def mount(app: web.Application, api: Api) -> None:
    app.add_subapp(PREFIX, api.app())
