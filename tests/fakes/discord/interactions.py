"""INTERACTION_CREATE payloads (commands, autocomplete, components) built from synced commands."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .fake_interaction import FakeInteraction
from .messages import find_component
from .models import Perm, as_id, snowflake
from .responses import ATTACHMENT_SIZE_LIMIT

if TYPE_CHECKING:
    from .server import FakeDiscord

SUBCOMMAND, GROUP, USER, CHANNEL, ROLE, MENTIONABLE, ATTACHMENT = 1, 2, 6, 7, 8, 9, 11


class InteractionMixin:
    """Mixed into FakeDiscord: the test API that plays a Discord user."""

    def _find_command(self: FakeDiscord, guild_id: int | None, name: str) -> dict[str, Any]:
        """The synced CHAT_INPUT command `name` (guild scope first, then global)."""
        scopes = ([int(guild_id)] if guild_id is not None else []) + ["global"]
        for scope in scopes:
            for command in self.synced_commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        known = {s: [c["name"] for c in cmds] for s, cmds in self.synced_commands.items()}
        raise LookupError(f"command {name!r} was not synced for guild {guild_id}; synced: {known}")

    async def invoke_command(
        self: FakeDiscord,
        guild_id: int | None,
        user_id: int,
        name: str,
        options: list[dict[str, Any]] | dict[str, Any] | None = None,
        *,
        permissions: int | str | None = None,
        roles: list[Any] | None = None,
        channel_id: int | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """Run a slash command (`name` may be a path: "shop product add") as a member."""
        return await self._command_interaction(
            2, guild_id, user_id, name, options, permissions, roles, channel_id, locale
        )

    async def autocomplete(
        self: FakeDiscord,
        guild_id: int | None,
        user_id: int,
        name: str,
        options: list[dict[str, Any]] | dict[str, Any] | None = None,
        *,
        permissions: int | str | None = None,
        channel_id: int | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """Send an autocomplete interaction (type 4); by default the last option is focused."""
        return await self._command_interaction(
            4, guild_id, user_id, name, options, permissions, None, channel_id, locale
        )

    async def _command_interaction(
        self: FakeDiscord,
        itype: int,
        guild_id: int | None,
        user_id: int,
        name: str,
        options: Any,
        permissions: int | str | None,
        roles: list[Any] | None,
        channel_id: int | None,
        locale: str,
    ) -> FakeInteraction:
        """Build nested options for a command path and dispatch it."""
        path = name.split()
        command = self._find_command(guild_id, path[0])
        if guild_id is None and 1 not in (command.get("contexts") or [0, 1, 2]):
            raise ValueError(f"command {path[0]!r} is not available in DMs")
        defs = command.get("options") or []
        data: dict[str, Any] = {"id": command["id"], "name": path[0], "type": 1}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        container = data
        for part in path[1:]:
            sub = next(
                (o for o in defs if o["name"] == part and o["type"] in (SUBCOMMAND, GROUP)), None
            )
            if sub is None:
                raise LookupError(f"{name!r}: no subcommand (group) {part!r}")
            node: dict[str, Any] = {"name": part, "type": sub["type"]}
            container["options"] = [node]
            container, defs = node, sub.get("options") or []
        if any(o["type"] in (SUBCOMMAND, GROUP) for o in defs):
            subs = [o["name"] for o in defs if o["type"] in (SUBCOMMAND, GROUP)]
            raise LookupError(f"{name!r} needs a subcommand: one of {subs}")
        resolved: dict[str, dict[str, Any]] = {}
        container["options"] = self._build_options(guild_id, defs, options, resolved, itype == 4)
        if resolved:
            data["resolved"] = resolved
        if roles is not None and guild_id is not None:
            self._ensure_member(guild_id, user_id).roles = [as_id(r) for r in roles]
        return self._send_interaction(
            itype, guild_id, user_id, data, channel_id, permissions, locale
        )

    def _build_options(
        self: FakeDiscord,
        guild_id: int | None,
        defs: list[dict[str, Any]],
        options: Any,
        resolved: dict[str, dict[str, Any]],
        autocomplete: bool,
    ) -> list[dict[str, Any]]:
        """Turn `{name: value}` or option dicts into typed options (+ resolved)."""
        given = (
            [{"name": k, "value": v} for k, v in options.items()]
            if isinstance(options, dict)
            else [dict(o) for o in options or []]
        )
        if autocomplete and given and not any(o.get("focused") for o in given):
            given[-1]["focused"] = True  # Discord always marks exactly one option focused
        by_name = {d["name"]: d for d in defs if d["type"] not in (SUBCOMMAND, GROUP)}
        built = []
        for opt in given:
            spec = by_name.get(opt["name"])
            if spec is None:
                raise LookupError(f"unknown option {opt['name']!r}; options: {sorted(by_name)}")
            focused = bool(opt.get("focused"))
            value = self._option_value(guild_id, spec, opt["value"], resolved, focused)
            built.append(
                {
                    "name": spec["name"],
                    "type": spec["type"],
                    "value": value,
                    **({"focused": True} if focused else {}),
                }
            )
        missing = [
            n
            for n, d in by_name.items()
            if d.get("required") and n not in {o["name"] for o in built}
        ]
        if missing and not autocomplete:
            raise ValueError(f"missing required options {missing}")
        return built

    def _option_value(
        self: FakeDiscord,
        guild_id: int | None,
        spec: dict[str, Any],
        value: Any,
        resolved: dict[str, dict[str, Any]],
        focused: bool,
    ) -> Any:
        """Coerce one option value by its synced type; fill `resolved` for snowflakes."""
        kind = spec["type"]
        if focused:
            return value
        if kind == 3:
            value = str(value)
        elif kind == 4:
            value = int(value)
        elif kind == 5:
            value = bool(value)
        elif kind == 10:
            value = float(value)
        choices = [c["value"] for c in spec.get("choices") or []]
        if choices and value not in choices:
            raise ValueError(f"option {spec['name']!r}: {value!r} is not one of {choices}")
        if kind == ATTACHMENT:
            resolved.setdefault("attachments", {})[str(value["id"])] = value
            return str(value["id"])
        if kind not in (USER, CHANNEL, ROLE, MENTIONABLE):
            return value
        oid = as_id(value)
        guild = self.guilds.get(int(guild_id)) if guild_id is not None else None
        if kind in (USER, MENTIONABLE) and oid in self.users:
            resolved.setdefault("users", {})[str(oid)] = self.users[oid].payload()
            member = guild.members.get(oid) if guild else None
            if member is not None:
                entry = {
                    **member.payload(with_user=False),
                    "permissions": str(guild.permissions(oid)),
                }
                resolved.setdefault("members", {})[str(oid)] = entry
        elif kind in (ROLE, MENTIONABLE) and guild is not None and oid in guild.roles:
            resolved.setdefault("roles", {})[str(oid)] = guild.roles[oid].payload()
        elif kind == CHANNEL and oid in self.channels:
            channel = self.channels[oid].payload()
            channel["permissions"] = str(Perm.ALL)
            resolved.setdefault("channels", {})[str(oid)] = channel
        else:
            raise LookupError(f"option {spec['name']!r}: fake Discord knows no such object {oid}")
        return str(oid)

    async def click_component(
        self: FakeDiscord,
        guild_id: int | None,
        user_id: int,
        custom_id: str,
        message_id: int | None = None,
        component_type: int | None = None,
        values: list[str] | None = None,
        *,
        permissions: int | str | None = None,
    ) -> FakeInteraction:
        """Click a button / choose in a select on a message the bot sent (type 3 interaction).

        Without `message_id` the newest message carrying `custom_id` is used. The component
        type defaults to the one found in that message (else 2, a button).
        """
        if message_id is not None:
            message = self.messages[int(message_id)]
        else:
            message = next(
                (
                    m
                    for m in reversed(self.messages.values())
                    if find_component(m["components"], custom_id)
                ),
                None,
            )
            if message is None:
                raise LookupError(f"no message the bot sent has a component {custom_id!r}")
        comp = find_component(message["components"], custom_id)
        ctype = component_type or (comp["type"] if comp else 2)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype}
        if ctype in (3, 5, 6, 7, 8):
            data["values"] = [str(v) for v in values or []]
        return self._send_interaction(
            3,
            guild_id,
            user_id,
            data,
            int(message["channel_id"]),
            permissions,
            "en-US",
            message=dict(message),
        )

    def _ensure_member(self: FakeDiscord, guild_id: int, user_id: int) -> Any:
        """Only members can interact; a non-member invoker is added silently (no event)."""
        member = self.member(guild_id, user_id)
        return member or self.add_member(guild_id, user_id, dispatch=False)

    def _send_interaction(
        self: FakeDiscord,
        itype: int,
        guild_id: int | None,
        user_id: int,
        data: dict[str, Any],
        channel_id: int | None,
        permissions: int | str | None,
        locale: str,
        message: dict[str, Any] | None = None,
    ) -> FakeInteraction:
        """Assemble the full INTERACTION_CREATE payload, register and dispatch it."""
        if self.gateway.session_for(guild_id) is None:
            raise RuntimeError("no gateway session (of this guild's shard) has IDENTIFIED yet")
        payload: dict[str, Any] = {
            "id": str(snowflake()),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48),
            "version": 1,
            "locale": locale,
            "entitlements": (held := self.active_entitlements(user_id, guild_id)),
            "entitlement_sku_ids": sorted({e["sku_id"] for e in held}),
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if guild_id is not None:
            guild = self.guild(guild_id)
            member = self._ensure_member(guild.id, user_id)
            perms = guild.permissions(user_id) if permissions is None else int(permissions)
            channel = guild.channels[int(channel_id)] if channel_id else guild.default_channel
            payload.update(
                guild={"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
                guild_id=str(guild.id),
                guild_locale=guild.preferred_locale,
                member={**member.payload(), "permissions": str(perms)},
                app_permissions=str(guild.permissions(self.bot_user.id)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            user = self.add_user(user_id)
            channel = self._dm_channel(user.id)
            perms = Perm.EVERYONE_DEFAULT if permissions is None else int(permissions)
            payload.update(
                user=user.payload(),
                app_permissions=str(Perm.EVERYONE_DEFAULT),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        payload["channel"] = {**channel.payload(), "permissions": str(perms)}
        payload["channel_id"] = str(channel.id)
        if message is not None:
            payload["message"] = message
        inter = FakeInteraction(self, payload)
        self.interactions[inter.id] = inter
        inter.seq = self.dispatch("INTERACTION_CREATE", payload)
        return inter
