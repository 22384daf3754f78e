"""The Stripe side of setting up: key mode and account, the webhook endpoint shopbot needs
(checked by `shopbot check`, made by `shopbot stripe setup-webhook`), the customer portal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import stripe

from bot.config import HttpSettings, StripeAccess
from bot.payments import StripeGateway
from bot.report import Report

WEBHOOK_PATH = "/webhooks/stripe"
EXAMPLE_PUBLIC_URL = "https://shop.example.com"
SIGNING_ENV_VAR = "SHOPBOT_STRIPE__WEBHOOK_SECRET"
T = TypeVar("T")


class _StripeSide(Protocol):
    @property
    def stripe(self) -> StripeAccess: ...
    @property
    def http(self) -> HttpSettings: ...


class StripeProblem(Exception):
    """One line saying what went wrong talking to Stripe and what to do."""


def key_mode(secret_key: str) -> str:
    return "live" if secret_key.startswith(("sk_live_", "rk_live_")) else "test"


def webhook_url(public_url: str) -> str:
    return public_url.rstrip("/") + WEBHOOK_PATH


def public_url_problem(public_url: str) -> str | None:
    if public_url.rstrip("/") == EXAMPLE_PUBLIC_URL:
        return (
            f"http.public_url is still the example {EXAMPLE_PUBLIC_URL}; set the public "
            "https URL this server is reached at"
        )
    return None


def missing_events(enabled: list[str], needed: list[str]) -> list[str]:
    """The needed events an endpoint does not receive (`*` receives them all)."""
    return [] if "*" in enabled else sorted(set(needed) - set(enabled))


async def _call(api_base: str, what: str, request: Awaitable[T]) -> T:
    """Await a Stripe request; turn each kind of failure into the line an operator needs."""
    try:
        return await request
    except stripe.AuthenticationError:
        raise StripeProblem(
            "Stripe rejected stripe.secret_key (HTTP 401): copy the secret key from the "
            "Dashboard → Developers → API keys"
        ) from None
    except stripe.PermissionError:
        raise StripeProblem(
            f"stripe.secret_key may not {what} (HTTP 403): allow it for this restricted key "
            "or use the secret key"
        ) from None
    except stripe.APIConnectionError as exc:
        # The SDK's text ends in "(Network error: A ClientConnectorError was raised)".
        text = exc.user_message or ""
        reason = text[text.rfind("(") + 1 :].rstrip(")") if "(" in text else type(exc).__name__
        raise StripeProblem(
            f"cannot reach Stripe at {api_base} ({reason}); check the network or stripe.api_base"
        ) from None
    except stripe.StripeError as exc:
        raise StripeProblem(
            f"Stripe refused to {what} (HTTP {exc.http_status}): {exc.user_message}"
        ) from None


def _gateway(access: StripeAccess) -> StripeGateway:
    return StripeGateway(
        access.secret_key.get_secret_value(),
        access.webhook_secret.get_secret_value(),
        access.api_base,
    )


async def _endpoints_for(client: stripe.StripeClient, api_base: str, url: str) -> list[Any]:
    """Every webhook endpoint of the account whose URL is `url`, oldest first."""
    found: list[Any] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = await _call(
            api_base,
            "list webhook endpoints",
            client.v1.webhook_endpoints.list_async(params=params),  # type: ignore[arg-type]
        )
        found += [endpoint for endpoint in page.data if endpoint.url == url]
        if not page.has_more or not page.data:
            return sorted(found, key=lambda endpoint: endpoint.created)
        params["starting_after"] = page.data[-1].id


async def check_stripe(
    settings: _StripeSide, events: list[str], sells_subscriptions: bool, report: Report
) -> None:
    """Key mode and account, the webhook endpoint and its events, the customer portal."""
    access = settings.stripe
    gateway = _gateway(access)
    client = gateway.client
    try:
        account = await _call(
            access.api_base, "read the account", client.v1.accounts.retrieve_current_async()
        )
        mode = key_mode(access.secret_key.get_secret_value())
        report.ok("stripe", f"{mode} mode, account {account.id}")
        problem = public_url_problem(settings.http.public_url)
        if problem:
            report.problem("http", problem)
        else:
            await _check_endpoint(client, access.api_base, settings.http.public_url, events, report)
        configurations = await _call(
            access.api_base,
            "read the customer portal settings",
            client.v1.billing_portal.configurations.list_async(params={"active": True, "limit": 1}),
        )
        if configurations.data:
            report.ok("stripe", f"customer portal configured ({configurations.data[0].id})")
        elif sells_subscriptions:
            report.problem(
                "stripe",
                "the customer portal is not configured, and subscribers manage their plan "
                "there: save it once in the Dashboard → Settings → Billing → Customer portal",
            )
        else:
            report.note("stripe", "customer portal not configured (only subscriptions need it)")
    except StripeProblem as exc:
        report.problem("stripe", str(exc))
    finally:
        await gateway.close()


async def _check_endpoint(
    client: stripe.StripeClient, api_base: str, public_url: str, events: list[str], report: Report
) -> None:
    url = webhook_url(public_url)
    endpoints = await _endpoints_for(client, api_base, url)
    if not endpoints:
        report.problem(
            "stripe", f"no webhook endpoint for {url}: run `shopbot stripe setup-webhook`"
        )
        return
    if len(endpoints) > 1:
        ids = ", ".join(endpoint.id for endpoint in endpoints)
        report.problem(
            "stripe",
            f"{len(endpoints)} webhook endpoints for {url} ({ids}): Stripe sends every event to "
            "each, signed with its own secret; delete all but one in the Dashboard",
        )
        return
    endpoint = endpoints[0]
    missing = missing_events(list(endpoint.enabled_events), events)
    if endpoint.status != "enabled":
        report.problem(
            "stripe",
            f"webhook endpoint {endpoint.id} for {url} is {endpoint.status}: "
            "run `shopbot stripe setup-webhook` to enable it",
        )
    elif missing:
        report.problem(
            "stripe",
            f"webhook endpoint {endpoint.id} for {url} does not receive {', '.join(missing)}: "
            "run `shopbot stripe setup-webhook` to add them",
        )
    else:
        report.ok(
            "stripe",
            f"webhook endpoint {endpoint.id} for {url} receives all {len(events)} events "
            "shopbot needs",
        )


async def setup_webhook(
    settings: _StripeSide, events: list[str], config: Path, out: Callable[[str], None]
) -> str | None:
    """Create the endpoint for {public_url}/webhooks/stripe with exactly `events`, or bring
    an existing one to exactly those; print what was done. Return a problem line or None."""
    problem = public_url_problem(settings.http.public_url)
    if problem:
        return problem
    access, url = settings.stripe, webhook_url(settings.http.public_url)
    gateway = _gateway(access)
    client = gateway.client
    try:
        endpoints = await _endpoints_for(client, access.api_base, url)
        if not endpoints:
            # Pin the API version: events then have the shape this SDK (and shopbot) reads.
            create: dict[str, Any] = {
                "url": url,
                "enabled_events": events,
                "api_version": stripe.api_version,
                "description": "shopbot",
            }
            created = await _call(
                access.api_base,
                "create a webhook endpoint",
                client.v1.webhook_endpoints.create_async(params=create),  # type: ignore[arg-type]
            )
            out(f"created webhook endpoint {created.id} for {url} with {len(events)} events")
            out(f"signing secret: {created.secret}")
            out(
                f"put it in stripe.webhook_secret in {config} (or set {SIGNING_ENV_VAR}), then "
                "start or restart shopbot; Stripe shows this secret only now"
            )
            return None
        endpoint = endpoints[0]
        for extra in endpoints[1:]:
            out(
                f"note: webhook endpoint {extra.id} is for the same URL; delete it in the Dashboard"
            )
        current = list(endpoint.enabled_events)
        if sorted(current) == sorted(events) and endpoint.status == "enabled":
            out(
                f"webhook endpoint {endpoint.id} for {url} already receives exactly the "
                f"{len(events)} events shopbot needs; nothing changed"
            )
        else:
            update: dict[str, Any] = {"enabled_events": events, "disabled": False}
            await _call(
                access.api_base,
                "update the webhook endpoint",
                client.v1.webhook_endpoints.update_async(
                    endpoint.id,
                    params=update,  # type: ignore[arg-type]  # events come as plain str
                ),
            )
            added = sorted(set(events) - set(current))
            removed = sorted(set(current) - set(events))
            out(
                f"updated webhook endpoint {endpoint.id} for {url}: now exactly the "
                f"{len(events)} events shopbot needs (added: {', '.join(added) or 'none'}; "
                f"removed: {', '.join(removed) or 'none'})"
            )
        out(
            "its signing secret is unchanged: keep the stripe.webhook_secret you have (lost "
            "it? Dashboard → Developers → Webhooks → this endpoint → Reveal signing secret)"
        )
        return None
    except StripeProblem as exc:
        return str(exc)
    finally:
        await gateway.close()
