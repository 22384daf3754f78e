"""Account setup objects: webhook endpoints and Billing customer portal configurations."""

from __future__ import annotations

import copy
import ipaddress
import typing
from typing import Any
from urllib.parse import urlsplit

from stripe.params._webhook_endpoint_create_params import WebhookEndpointCreateParams

from .errors import invalid, missing_param
from .objects import fresh
from .state import FakeState, StripeObject, merge_metadata, validate_metadata


def _literal_values(annotation: Any) -> frozenset[str]:
    """Every string of the `Literal[...]` inside a `List[...]`/`NotRequired[...]` annotation."""
    found: set[str] = set()
    for arg in typing.get_args(annotation):
        if isinstance(arg, str):
            found.add(arg)
        else:
            found |= _literal_values(arg)
    return frozenset(found)


_CREATE = WebhookEndpointCreateParams.__annotations__
#: The event names Stripe accepts in `enabled_events` (the SDK's list, generated from Stripe's
#: OpenAPI spec), `*` included.
KNOWN_EVENTS = _literal_values(_CREATE["enabled_events"])
#: The API versions an endpoint may be pinned to.
KNOWN_API_VERSIONS = _literal_values(_CREATE["api_version"])
#: Stripe allows 16 webhook endpoints per account and mode.
MAX_ENDPOINTS = 16
_LOCAL = (
    "Invalid URL: URL must be publicly accessible. Consider using a tool like the Stripe CLI "
    "to test webhooks locally: https://github.com/stripe/stripe-cli"
)


class AccountSetupOps(FakeState):
    """`/v1/webhook_endpoints` and `/v1/billing_portal/configurations`."""

    def create_webhook_endpoint(self, params: dict[str, Any]) -> StripeObject:
        """`POST /v1/webhook_endpoints`: the response alone carries the signing `secret`."""
        if len(self.webhook_endpoints) >= MAX_ENDPOINTS:
            raise invalid(
                f"You have reached the maximum of {MAX_ENDPOINTS} test webhook endpoints."
            )
        url = self._endpoint_url(params.get("url"))
        events = self._enabled_events(params.get("enabled_events"))
        version = params.get("api_version") or None
        if version is not None and version not in KNOWN_API_VERSIONS:
            raise invalid(f"Invalid Stripe API version: {version}", param="api_version")
        endpoint = fresh(
            "webhook_endpoint",
            id=self.ids.new("we"),
            api_version=version,
            created=self.now(),
            description=params.get("description") or None,
            enabled_events=events,
            livemode=self.secret_key.startswith(("sk_live_", "rk_live_")),
            metadata=validate_metadata(params.get("metadata")),
            status="enabled",
            url=url,
        )
        self.webhook_endpoints[endpoint["id"]] = endpoint
        secret = "whsec_" + self.ids.token(32)
        self.webhook_secrets[endpoint["id"]] = secret
        return {**copy.deepcopy(endpoint), "secret": secret}

    def update_webhook_endpoint(self, endpoint_id: str, params: dict[str, Any]) -> StripeObject:
        """`POST /v1/webhook_endpoints/{id}`: url, enabled_events, disabled, description,
        metadata. The secret stays the same (and is not returned)."""
        endpoint = self.lookup(self.webhook_endpoints, "webhook_endpoint", endpoint_id)
        changes: dict[str, Any] = {}
        if "url" in params:
            changes["url"] = self._endpoint_url(params["url"])
        if "enabled_events" in params:
            changes["enabled_events"] = self._enabled_events(params["enabled_events"])
        if "disabled" in params:
            if not isinstance(params["disabled"], bool):
                raise invalid("Invalid boolean: " + str(params["disabled"]), param="disabled")
            changes["status"] = "disabled" if params["disabled"] else "enabled"
        if "description" in params:
            changes["description"] = params["description"] or None
        if "metadata" in params:
            changes["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
        endpoint.update(changes)
        return endpoint

    def delete_webhook_endpoint(self, endpoint_id: str) -> StripeObject:
        """`DELETE /v1/webhook_endpoints/{id}`."""
        self.lookup(self.webhook_endpoints, "webhook_endpoint", endpoint_id)
        del self.webhook_endpoints[endpoint_id]
        self.webhook_secrets.pop(endpoint_id, None)
        return fresh("deleted_webhook_endpoint", id=endpoint_id)

    def add_portal_configuration(self, **fields: Any) -> StripeObject:
        """What saving the customer portal settings in the Dashboard does (there is no API
        shortcut in shopbot for it): store an active configuration, the first one the
        default. `fields` override the fixture's (e.g. `active=False`)."""
        defaults = {
            "id": self.ids.new("bpc"),
            "created": self.now(),
            "updated": self.now(),
            "is_default": not self.portal_configurations,
            "livemode": False,
            "metadata": {},
        }
        configuration = fresh("billing_portal.configuration", **{**defaults, **fields})
        self.portal_configurations[configuration["id"]] = configuration
        return configuration

    def _endpoint_url(self, url: Any) -> str:
        """A webhook URL Stripe would accept: http(s), a public host; https in live mode."""
        if url in (None, ""):
            raise missing_param("url")
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid(f"Invalid URL: {url}", param="url")
        host = parts.hostname
        try:
            address = ipaddress.ip_address(host)
            local = address.is_private or address.is_loopback or address.is_unspecified
        except ValueError:
            local = host == "localhost" or host.endswith(".localhost")
        if local:
            raise invalid(_LOCAL, param="url")
        if parts.scheme != "https" and self.secret_key.startswith(("sk_live_", "rk_live_")):
            raise invalid("Invalid URL: live mode webhook URLs must use HTTPS.", param="url")
        return str(url)

    def _enabled_events(self, events: Any) -> list[str]:
        """A non-empty list of known event names (or `*`)."""
        if events in (None, ""):
            raise missing_param("enabled_events")
        names = events if isinstance(events, list) else [events]
        for index, name in enumerate(names):
            if name not in KNOWN_EVENTS:
                raise invalid(
                    f"Invalid enabled_events[{index}]: must be one of "
                    + ", ".join(sorted(KNOWN_EVENTS)),
                    param=f"enabled_events[{index}]",
                )
        return list(dict.fromkeys(names))
