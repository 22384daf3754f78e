"""The OpenAPI document of /api/v1 is generated from the route table and the pydantic
models: every route is in it with its parameters, body and every response."""

from __future__ import annotations

from bot.api.keys import RateLimiter
from bot.api.router import PREFIX, Api, Route
from bot.api.routes import build_api
from bot.clock import FrozenClock


def table() -> Api:
    return build_api(None, None, RateLimiter(60, FrozenClock()))  # type: ignore[arg-type]


def test_openapi_describes_every_route_from_the_models() -> None:
    """Each route: its operation, path parameters, request body schema from its model, and
    its success and error responses (401/403/429 always, the error format everywhere)."""
    api = table()
    document = api.openapi()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    assert len(api.routes) == 15
    for route in api.routes:
        operation = document["paths"][PREFIX + route.path][route.method.lower()]
        responses = operation["responses"]
        assert {"401", "403", "429", "default"} <= set(responses), route.path
        assert "Retry-After" in responses["429"]["headers"]
        for status in route.responses:
            ref = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
        names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert names == set(route.path_model.model_fields) if route.path_model else not names
        if route.body_model is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schemas[ref.rsplit("/", 1)[-1]]["title"] == route.body_model.__name__
            assert {"400", "413", "422"} <= set(responses)
    assert schemas["OrderCreate"]["required"] == ["guild_id", "product_id", "reference"]


def test_scopes_follow_method_and_path() -> None:
    """GET needs read, other methods write, /licenses/* licenses (for routes added later)."""

    async def handler(call: object) -> tuple[int, str]:
        return 200, "{}"

    assert Route("GET", "/orders", handler, "", {}).needed_scope == "read"
    assert Route("DELETE", "/webhooks/{id}", handler, "", {}).needed_scope == "write"
    assert Route("POST", "/licenses/validate", handler, "", {}).needed_scope == "licenses"
    assert Route("GET", "/licenses/x", handler, "", {}).needed_scope == "licenses"
