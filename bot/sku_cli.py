"""`shopbot sku test-entitlement create|delete`: Discord's test entitlements, for trying a
linked SKU without paying (FACTS.md: `POST /applications/{app}/entitlements` with owner_type
1 guild | 2 user, `DELETE …/entitlements/{id}`). Bot-token REST, no gateway."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.config import Settings

OWNER_GUILD, OWNER_USER = 1, 2


class SkuCliError(Exception):
    """One line for the operator: what Discord said, or that it could not be reached."""


class _Discord:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self.session.request(method, self.base + path, json=body) as response:
                data = await response.json(content_type=None) if response.status != 204 else None
                if response.status >= 400:
                    raise SkuCliError(_refusal(method, path, response.status, data))
                return data
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SkuCliError(
                f"cannot reach Discord at {self.base} ({type(exc).__name__})"
            ) from None


def _refusal(method: str, path: str, status: int, data: Any) -> str:
    if status == 401:
        return "Discord rejected discord.token (HTTP 401)"
    if isinstance(data, dict) and "message" in data:
        return f"Discord refused {method} {path}: {data['message']} ({data.get('code')})"
    return f"Discord refused {method} {path} (HTTP {status})"


async def _session_app(settings: Settings, rest: _Discord) -> int:
    """discord.application_id, or the id Discord gives for the token."""
    if settings.discord.application_id:
        return settings.discord.application_id
    application = await rest.call("GET", "/oauth2/applications/@me")
    return int(application["id"])


def _client(settings: Settings) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bot {settings.discord.token.get_secret_value()}"}
    return aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=20))


async def create_test_entitlement(
    settings: Settings, sku_id: int, *, user_id: int | None, guild_id: int | None
) -> dict[str, Any]:
    """A test entitlement to the SKU for a user or a guild; Discord's JSON of it."""
    if (user_id is None) == (guild_id is None):
        raise SkuCliError("give exactly one of --user and --guild")
    owner, owner_type = (user_id, OWNER_USER) if user_id is not None else (guild_id, OWNER_GUILD)
    async with _client(settings) as session:
        rest = _Discord(session, settings.discord.api_base.rstrip("/"))
        app_id = await _session_app(settings, rest)
        made: dict[str, Any] = await rest.call(
            "POST",
            f"/applications/{app_id}/entitlements",
            {"sku_id": str(sku_id), "owner_id": str(owner), "owner_type": owner_type},
        )
        return made


async def delete_test_entitlement(settings: Settings, entitlement_id: int) -> None:
    """Delete a test entitlement (Discord sends ENTITLEMENT_DELETE: shopbot refunds it)."""
    async with _client(settings) as session:
        rest = _Discord(session, settings.discord.api_base.rstrip("/"))
        app_id = await _session_app(settings, rest)
        await rest.call("DELETE", f"/applications/{app_id}/entitlements/{entitlement_id}")
