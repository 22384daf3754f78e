"""`shopbot check`: the catalog's needs, the Discord side (bot, servers, intent, invite URL,
permissions, role hierarchy) and the report every part writes its lines to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.clock import SystemClock
from bot.config import Settings
from bot.models import Action, ActionType, Kind, Product
from bot.report import Report
from bot.services import build_domain
from bot.store import DatabaseTooNew, Store
from bot.stripe_setup import check_stripe

# Discord permission bits (discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
SEND_MESSAGES = 1 << 11
MANAGE_ROLES = 1 << 28
PERMISSION_NAMES = {
    MANAGE_ROLES: "Manage Roles",
    CREATE_INSTANT_INVITE: "Create Instant Invite",
    KICK_MEMBERS: "Kick Members",
    BAN_MEMBERS: "Ban Members",
    SEND_MESSAGES: "Send Messages",
}
# Application flags: the Server Members intent, for verified (14) and other (15) apps.
MEMBERS_INTENT_FLAGS = (1 << 14) | (1 << 15)
INVITE_URL = (
    "https://discord.com/oauth2/authorize?client_id={client_id}"
    "&scope=bot%20applications.commands&permissions={permissions}"
)


@dataclass
class Catalog:
    """The live products of every guild and their live actions."""

    products: list[Product] = field(default_factory=list)
    actions: dict[int, list[Action]] = field(default_factory=dict)

    def of_guild(self, guild_id: int) -> list[tuple[Product, Action]]:
        return [
            (product, action)
            for product in self.products
            if product.guild_id == guild_id
            for action in self.actions.get(product.id, [])
        ]

    def all_actions(self) -> list[Action]:
        return [action for actions in self.actions.values() for action in actions]

    @property
    def guild_ids(self) -> set[int]:
        return {product.guild_id for product in self.products}

    @property
    def sells_subscriptions(self) -> bool:
        return any(product.kind == Kind.SUBSCRIPTION for product in self.products)


def action_permissions(action: Action) -> int:
    """The Discord permissions one action needs in its guild (a DM needs none)."""
    if action.type == ActionType.GRANT_ROLE:
        return MANAGE_ROLES
    if action.type == ActionType.CREATE_INVITE:
        return CREATE_INSTANT_INVITE
    if action.type == ActionType.KICK:
        return KICK_MEMBERS
    if action.type == ActionType.BAN:
        return BAN_MEMBERS
    if action.type == ActionType.SEND_MESSAGE and action.channel_id:
        return SEND_MESSAGES
    return 0


def needed_permissions(actions: list[Action]) -> int:
    """What the invite asks for: the union of the actions' needs; with no actions yet,
    Manage Roles (what a role shop needs)."""
    needed = 0
    for action in actions:
        needed |= action_permissions(action)
    return needed if actions else MANAGE_ROLES


def permission_names(bits: int) -> list[str]:
    return [name for bit, name in PERMISSION_NAMES.items() if bits & bit]


def _why(needed: int, actions: list[Action]) -> str:
    """`Manage Roles (grant_role), Send Messages (send_message to a channel)`."""
    if not actions:
        return "Manage Roles (no products yet; what a role shop needs)"
    parts = []
    for bit, name in PERMISSION_NAMES.items():
        users = sorted({action.type for action in actions if action_permissions(action) & bit})
        if needed & bit:
            uses = ", ".join(
                f"{u} to a channel" if u == ActionType.SEND_MESSAGE else u for u in users
            )
            parts.append(f"{name} ({uses})")
    return ", ".join(parts)


def invite_url(client_id: int | str, permissions: int) -> str:
    return INVITE_URL.format(client_id=client_id, permissions=permissions)


async def load_catalog(path: Path) -> Catalog:
    """Read the catalog; a database not created yet has none (and is not created here)."""
    catalog = Catalog()
    if not path.exists():
        return catalog
    store = Store(path, SystemClock())
    try:
        await store.open()
        async with store.reading() as tx:
            catalog.products = await tx.products.live_in_every_guild()
            for product in catalog.products:
                catalog.actions[product.id] = await tx.products.actions(product.id)
    finally:
        await store.close()
    return catalog


async def run_check(settings: Settings, out: Callable[[str], None]) -> int:
    """Check everything; return the number of problems (each reported on one line)."""
    report = Report(out)
    try:
        catalog = await load_catalog(settings.database.path)
    except DatabaseTooNew as exc:
        report.problem("database", str(exc))
        catalog = Catalog()
    count = sum(len(actions) for actions in catalog.actions.values())
    if settings.database.path.exists():
        report.ok("database", f"{len(catalog.products)} products with {count} actions")
    else:
        report.note("database", "not created yet (no products); `shopbot run` creates it")
    await check_discord(settings, catalog, report)
    events = build_domain(settings).dispatcher.event_types
    await check_stripe(settings, events, catalog.sells_subscriptions, report)
    if report.problems:
        count = report.problems
        out(
            f"check: {count} problem{'s' if count > 1 else ''} to fix; "
            "then run `shopbot check` again"
        )
    else:
        out("check: all good; start the bot with `shopbot run`")
    return report.problems


class DiscordRefused(Exception):
    def __init__(self, path: str, status: int) -> None:
        super().__init__(f"GET {path} answered HTTP {status}")
        self.status = status


class DiscordUnreachable(Exception):
    """No answer from Discord at all (network, DNS, TLS): reported as "cannot reach"."""


class _Rest:
    """The few bot-token GETs the check makes."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def get(self, path: str, **params: str) -> Any:
        try:
            async with self.session.get(self.base + path, params=params) as response:
                if response.status != 200:
                    raise DiscordRefused(path, response.status)
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DiscordUnreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


async def check_discord(settings: Settings, catalog: Catalog, report: Report) -> None:
    base = settings.discord.api_base.rstrip("/")
    headers = {"Authorization": f"Bot {settings.discord.token.get_secret_value()}"}
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        rest = _Rest(session, base)
        try:
            await _discord(rest, catalog, report)
        except DiscordUnreachable as exc:
            report.problem("discord", f"cannot reach Discord at {base} ({exc})")
        except DiscordRefused as exc:
            if exc.status == 401:
                report.problem(
                    "discord",
                    "Discord rejected discord.token (HTTP 401): reset it in the Developer "
                    "Portal → your app → Bot → Reset Token and put the new one in discord.token",
                )
            else:
                report.problem("discord", str(exc))


async def _discord(rest: _Rest, catalog: Catalog, report: Report) -> None:
    user = await rest.get("/users/@me")
    application = await rest.get("/oauth2/applications/@me")
    guilds = await _all_guilds(rest)
    names = ", ".join(f"{g['name']} ({g['id']})" for g in guilds)
    report.ok(
        "discord",
        f"logged in as {user['username']} (id {user['id']}), in {len(guilds)} "
        + ("server" if len(guilds) == 1 else "servers")
        + (f": {names}" if names else ""),
    )
    if int(application.get("flags") or 0) & MEMBERS_INTENT_FLAGS:
        report.ok("discord", "the Server Members intent is enabled")
    else:
        report.problem(
            "discord",
            "the Server Members intent is off: Developer Portal → your app → Bot → "
            "Privileged Gateway Intents → Server Members Intent",
        )
    actions = catalog.all_actions()
    needed = needed_permissions(actions)
    report.note("discord", f"invite URL {invite_url(application['id'], needed)}")
    report.note("discord", f"the invite asks for {_why(needed, actions)}")
    if not guilds:
        report.problem("discord", "the bot is in no server yet: open the invite URL above")
    for guild in guilds:
        try:
            await _guild(rest, user["id"], guild, catalog, report)
        except DiscordRefused as exc:
            report.problem("discord", f"{guild['name']}: {exc}")
    joined = {int(g["id"]) for g in guilds}
    for guild_id in sorted(catalog.guild_ids - joined):
        report.problem(
            "discord",
            f"server {guild_id} has products but the bot is not in it: open the invite URL above",
        )


async def _all_guilds(rest: _Rest) -> list[dict[str, Any]]:
    guilds: list[dict[str, Any]] = []
    while True:
        page = await rest.get(
            "/users/@me/guilds", limit="200", after=guilds[-1]["id"] if guilds else "0"
        )
        guilds += page
        if len(page) < 200:
            return guilds


async def _guild(
    rest: _Rest, bot_id: str, guild: dict[str, Any], catalog: Catalog, report: Report
) -> None:
    """The bot's permissions and role position in one server against its products."""
    name, pairs = guild["name"], catalog.of_guild(int(guild["id"]))
    if not pairs:
        report.note("discord", f"{name}: no product actions here yet")
        return
    have = int(guild.get("permissions") or 0)
    need = needed_permissions([action for _, action in pairs])
    missing = 0 if have & ADMINISTRATOR else need & ~have
    if missing:
        report.problem(
            "discord",
            f"{name}: the bot lacks {', '.join(permission_names(missing))}; give its role "
            "that in Server Settings → Roles",
        )
    roles = {int(role["id"]): role for role in await rest.get(f"/guilds/{guild['id']}/roles")}
    member = await rest.get(f"/guilds/{guild['id']}/members/{bot_id}")
    mine = [roles[int(r)] for r in member["roles"] if int(r) in roles]
    top = max(mine, key=lambda role: role["position"], default=None)
    top_name, top_position = (top["name"], top["position"]) if top else ("@everyone", 0)
    wanted = {
        action.role_id: product.name
        for product, action in pairs
        if action.type == ActionType.GRANT_ROLE and action.role_id is not None
    }
    fine = []
    for role_id, product_name in wanted.items():
        role = roles.get(role_id)
        if role is None:
            report.problem(
                "discord",
                f"{name}: product {product_name} gives role {role_id}, which no longer exists",
            )
        elif role["managed"]:
            report.problem(
                "discord",
                f"{name}: role {role['name']} belongs to an integration; no bot can give it",
            )
        elif role["position"] >= top_position:
            report.problem(
                "discord",
                f"{name}: role {role['name']} is not below the bot's highest role {top_name}; "
                f"drag {top_name} above it in Server Settings → Roles",
            )
        else:
            fine.append(role["name"])
    if fine and len(fine) == len(wanted):
        report.ok(
            "discord",
            f"{name}: the bot's role {top_name} is above every product role ({', '.join(fine)})",
        )
