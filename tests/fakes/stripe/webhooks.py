"""Signing and sending webhook events exactly as Stripe does (`Stripe-Signature: t=…,v1=…`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

#: Headers Stripe puts on every webhook delivery (besides the signature).
STRIPE_WEBHOOK_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "Cache-Control": "no-cache",
    "Accept": "*/*; q=0.5, application/xml",
}


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` value for `payload`: HMAC-SHA256 of `"{t}.{payload}"` keyed by
    the `whsec_…` secret, formatted `t=<unix>,v1=<hex>`. `timestamp` defaults to now."""
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{stamp}.".encode() + body, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Serialize an event the way Stripe's deliveries look (2-space indented JSON)."""
    return json.dumps(event, indent=2).encode("utf-8")


class WebhookSender:
    """POSTs signed events to a webhook endpoint, like Stripe's delivery system."""

    def __init__(
        self, url: str, secret: str, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Send to `url`, signing with `secret`; `session` is used (and not closed) if given."""
        self.url = url
        self.secret = secret
        self._session = session
        self._owns_session = session is None

    async def _client(self) -> aiohttp.ClientSession:
        """The HTTP session, created on first use."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def headers_for(self, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Stripe's delivery headers for `payload`, signature included."""
        signature = sign_payload(payload, self.secret, timestamp)
        return {**STRIPE_WEBHOOK_HEADERS, "Stripe-Signature": signature}

    async def send(
        self, event: Mapping[str, Any], *, timestamp: int | None = None
    ) -> tuple[int, str]:
        """JSON-encode, sign and POST `event`; return the response status and text."""
        payload = encode_event(event)
        return await self.send_raw(payload, self.headers_for(payload, timestamp))

    async def send_raw(
        self, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        """POST `body` with exactly `headers` (for bad, missing or stale signatures)."""
        client = await self._client()
        async with client.post(self.url, data=body, headers=dict(headers or {})) as response:
            return response.status, await response.text()

    async def close(self) -> None:
        """Close the HTTP session if this sender created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WebhookSender:
        """`async with WebhookSender(url, secret) as sender:`."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the session."""
        await self.close()
