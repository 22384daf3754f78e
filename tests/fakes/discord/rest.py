"""REST handlers: users, application, commands, guilds, members, roles, bans, channels, DMs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import responses as R
from .models import FakeGuild, FakeMember, Perm, snowflake
from .oauth import AUTH_KEY, JoinOp
from .responses import DiscordHTTPError, json_response, no_content

if TYPE_CHECKING:
    from .server import FakeDiscord


class RestRoutes:
    """Bot-token REST routes (all relative to /api/v10)."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Bind to the fake whose state the handlers use."""
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table."""
        app, guild, member = (
            "/applications/{application_id}",
            "/guilds/{guild_id}",
            "/members/{user_id}",
        )
        return [
            web.get("/gateway", self.gateway),
            web.get("/gateway/bot", self.gateway_bot),
            web.get("/users/@me", self.me),
            web.get("/users/@me/guilds", self.my_guilds),
            web.get("/oauth2/applications/@me", self.application),
            web.get("/applications/@me", self.application),
            web.get(app + "/commands", self.get_commands),
            web.put(app + "/commands", self.put_commands),
            web.get(app + guild + "/commands", self.get_commands),
            web.put(app + guild + "/commands", self.put_commands),
            web.get(guild, self.get_guild),
            web.get(guild + "/roles", self.get_roles),
            web.get(guild + "/members", self.list_members),
            web.get(guild + member, self.get_member),
            web.put(guild + member, self.add_member),
            web.patch(guild + member, self.edit_member),
            web.delete(guild + member, self.kick),
            web.put(guild + member + "/roles/{role_id}", self.role_op),
            web.delete(guild + member + "/roles/{role_id}", self.role_op),
            web.get(guild + "/bans/{user_id}", self.get_ban),
            web.put(guild + "/bans/{user_id}", self.ban),
            web.delete(guild + "/bans/{user_id}", self.unban),
        ]

    # ------------------------------------------------------------- helpers
    def _guild(self, request: web.Request) -> FakeGuild:
        """The guild from the URL or 404 Unknown Guild."""
        guild = self.fake.guilds.get(parse_id(request.match_info["guild_id"]))
        if guild is None:
            raise DiscordHTTPError(404, R.UNKNOWN_GUILD)
        return guild

    def _member(self, guild: FakeGuild, request: web.Request) -> FakeMember:
        """The member from the URL or 404 Unknown Member."""
        member = guild.members.get(parse_id(request.match_info["user_id"]))
        if member is None:
            raise DiscordHTTPError(404, R.UNKNOWN_MEMBER)
        return member

    def _outranks(self, guild: FakeGuild, member: FakeMember) -> None:
        """The bot may only act on members whose top role is below its own (never the owner)."""
        bot_top = guild.top_position(self.fake.bot_user.id)
        if member.id == guild.owner_id or guild.top_position(member.id) >= bot_top:
            raise DiscordHTTPError(403, R.MISSING_PERMISSIONS)

    # ------------------------------------------------------- app and users
    async def gateway(self, request: web.Request) -> web.Response:
        """GET /gateway."""
        return json_response({"url": self.fake.gateway_url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        """GET /gateway/bot."""
        gateway = self.fake.gateway
        return json_response(
            {
                "url": self.fake.gateway_url,
                "shards": gateway.recommended(),
                "session_start_limit": gateway.session_start_limit(),
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        """GET /users/@me: the bot, or with a Bearer token the user who granted it."""
        grant = request[AUTH_KEY].grant
        if grant is None:
            return json_response(self.fake._self_user_payload())
        user = self.fake.add_user(grant.user_id)
        data = {**user.payload(), "mfa_enabled": False, "locale": "en-US", "premium_type": 0}
        if "email" in grant.scopes:
            data.update(email=f"{user.username}@example.com", verified=True)
        return json_response(data)

    async def my_guilds(self, request: web.Request) -> web.Response:
        """GET /users/@me/guilds?before=&after=&limit= (1..200, default 200), by id, each
        with the bot's guild-level `permissions`."""
        limit = parse_id(request.query.get("limit", "200"))
        if not 1 <= limit <= 200:
            raise DiscordHTTPError(400, R.INVALID_FORM_BODY)
        after = parse_id(request.query.get("after", "0"))
        before = parse_id(request.query["before"]) if "before" in request.query else None
        ids = sorted(g for g in self.fake.guilds if g > after and (before is None or g < before))
        bot_id = self.fake.bot_user.id
        return json_response(
            [
                {
                    "id": str(guild.id),
                    "name": guild.name,
                    "icon": None,
                    "banner": None,
                    "owner": guild.owner_id == bot_id,
                    "permissions": str(guild.permissions(bot_id)),
                    "features": [],
                }
                for guild in (self.fake.guilds[g] for g in ids[:limit])
            ]
        )

    async def application(self, request: web.Request) -> web.Response:
        """GET /oauth2/applications/@me."""
        return json_response(self.fake._application_payload())

    # ------------------------------------------------------------ commands
    def _scope(self, request: web.Request) -> int | str:
        """'global' or the guild id of a commands route (403 for another app)."""
        if request.match_info["application_id"] != str(self.fake.application_id):
            raise DiscordHTTPError(403, R.MISSING_ACCESS)
        if "guild_id" not in request.match_info:
            return "global"
        return self._guild(request).id

    async def get_commands(self, request: web.Request) -> web.Response:
        """GET application (guild) commands."""
        return json_response(self.fake.synced_commands.get(self._scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        """PUT bulk overwrite: ids are kept for existing (name, type), a new version each time."""
        scope = self._scope(request)
        old = {
            (c["name"], c.get("type", 1)): c["id"] for c in self.fake.synced_commands.get(scope, [])
        }
        result = []
        for cmd in request[R.BODY_KEY].json or []:
            ctype = cmd.get("type") or 1
            perms = cmd.get("default_member_permissions")
            out = {
                **cmd,
                "id": old.get((cmd["name"], ctype)) or str(snowflake()),
                "application_id": str(self.fake.application_id),
                "version": str(snowflake()),
                "type": ctype,
                "description": cmd.get("description") or "",
                "default_member_permissions": None if perms is None else str(perms),
                "nsfw": bool(cmd.get("nsfw")),
            }
            if scope != "global":
                out["guild_id"] = str(scope)
            result.append(out)
        self.fake.synced_commands[scope] = result
        self.fake.command_syncs.append((scope, result))
        return json_response(result)

    # -------------------------------------------------------------- guilds
    async def get_guild(self, request: web.Request) -> web.Response:
        """GET /guilds/{g} (?with_counts adds approximate counts)."""
        guild = self._guild(request)
        data = guild.payload()
        if request.query.get("with_counts") in ("1", "true", "True"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return json_response(data)

    async def get_roles(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/roles."""
        return json_response(self._guild(request).payload()["roles"])

    async def list_members(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/members?limit=&after= (needs the members intent in the portal)."""
        guild = self._guild(request)
        if not self.fake.members_intent_enabled:
            raise DiscordHTTPError(403, R.MISSING_ACCESS)
        limit = min(max(parse_id(request.query.get("limit", "1")), 1), 1000)
        after = parse_id(request.query.get("after", "0"))
        ids = sorted(uid for uid in guild.members if uid > after)[:limit]
        return json_response([guild.members[uid].payload() for uid in ids])

    async def get_member(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/members/{u} → member or 10007."""
        guild = self._guild(request)
        return json_response(self._member(guild, request).payload())

    async def add_member(self, request: web.Request) -> web.Response:
        """PUT /guilds/{g}/members/{u} {access_token, roles?, nick?, mute?, deaf?}: 201 with
        the new member, 204 (body ignored) if already one; 50025 for a token that is not this
        user's `guilds.join` grant to this app, 40007 for a banned user, 50013 without
        CREATE_INSTANT_INVITE (or MANAGE_ROLES/NICKNAMES, MUTE/DEAFEN_MEMBERS for the fields)."""
        fake, guild = self.fake, self._guild(request)
        uid = parse_id(request.match_info["user_id"])
        body = request[R.BODY_KEY].json or {}
        try:
            response, roles = self._join(guild, uid, body)
        except DiscordHTTPError as error:
            fake.joins.append(JoinOp(guild.id, uid, (), error.status))
            raise
        fake.joins.append(JoinOp(guild.id, uid, roles, response.status))
        return response

    def _join(
        self, guild: FakeGuild, uid: int, body: dict[str, Any]
    ) -> tuple[web.Response, tuple[int, ...]]:
        """The checks and effect of add_member, in Discord's order."""
        fake, bot_id = self.fake, self.fake.bot_user.id
        require(guild, bot_id, Perm.CREATE_INSTANT_INVITE)
        grant = fake.oauth_grants.get(str(body.get("access_token")))
        if (
            grant is None
            or not grant.valid(fake.clock())
            or grant.user_id != uid
            or grant.client_id != str(fake.application_id)
            or "guilds.join" not in grant.scopes
        ):
            raise DiscordHTTPError(403, R.INVALID_OAUTH_TOKEN)
        if uid in guild.members:
            return no_content(), ()
        if uid in guild.bans:
            raise DiscordHTTPError(403, R.USER_BANNED)
        needs = {"roles": Perm.MANAGE_ROLES, "nick": Perm.MANAGE_NICKNAMES}
        needs.update(mute=Perm.MUTE_MEMBERS, deaf=Perm.DEAFEN_MEMBERS)
        for key, permission in needs.items():
            if body.get(key) not in (None, False, [], ""):
                require(guild, bot_id, permission)
        roles = tuple(dict.fromkeys(parse_id(str(r)) for r in body.get("roles") or []))
        for rid in roles:
            self._check_assignable(guild, rid)
        # Under membership screening a new member is pending, unless given a role.
        pending = guild.screening and not roles
        member = fake.add_member(guild.id, uid, roles, pending=pending, nick=body.get("nick"))
        return json_response(member.payload(), status=201), roles

    async def edit_member(self, request: web.Request) -> web.Response:
        """PATCH /guilds/{g}/members/{u} (roles, nick)."""
        guild = self._guild(request)
        member = self._member(guild, request)
        body = request[R.BODY_KEY].json or {}
        if "roles" in body:
            require(guild, self.fake.bot_user.id, Perm.MANAGE_ROLES)
            new = {parse_id(r) for r in body["roles"] or []}
            for rid in new.symmetric_difference(member.roles):
                self._check_assignable(guild, rid)
            member.roles = sorted(new)
        if "nick" in body:
            member.nick = body["nick"]
        self.fake.member_updated(guild.id, member)
        return json_response(member.payload())

    def _check_assignable(self, guild: FakeGuild, role_id: int) -> None:
        """404 Unknown Role, or 403 for managed/@everyone/roles at or above the bot."""
        role = guild.roles.get(role_id)
        if role is None:
            raise DiscordHTTPError(404, R.UNKNOWN_ROLE)
        bot_top = guild.top_position(self.fake.bot_user.id)
        if role.managed or role.id == guild.id or role.position >= bot_top:
            raise DiscordHTTPError(403, R.MISSING_PERMISSIONS)

    async def role_op(self, request: web.Request) -> web.Response:
        """PUT/DELETE /guilds/{g}/members/{u}/roles/{r} → 204, 10007, 10011 or 50013."""
        guild = self._guild(request)
        member = self._member(guild, request)
        role_id = parse_id(request.match_info["role_id"])
        if role_id not in guild.roles:
            raise DiscordHTTPError(404, R.UNKNOWN_ROLE)
        require(guild, self.fake.bot_user.id, Perm.MANAGE_ROLES)
        self._check_assignable(guild, role_id)
        has = role_id in member.roles
        if request.method == "PUT" and not has:
            member.roles.append(role_id)
        elif request.method == "DELETE" and has:
            member.roles.remove(role_id)
        else:
            return no_content()
        self.fake.member_updated(guild.id, member)
        return no_content()

    async def kick(self, request: web.Request) -> web.Response:
        """DELETE /guilds/{g}/members/{u}."""
        guild = self._guild(request)
        member = self._member(guild, request)
        require(guild, self.fake.bot_user.id, Perm.KICK_MEMBERS)
        self._outranks(guild, member)
        self.fake.kicks.append((guild.id, member.id, request[R.RECORD_KEY].reason))
        self.fake.remove_member(guild.id, member.id)
        return no_content()

    async def get_ban(self, request: web.Request) -> web.Response:
        """GET /guilds/{g}/bans/{u}."""
        guild = self._guild(request)
        uid = parse_id(request.match_info["user_id"])
        if uid not in guild.bans:
            raise DiscordHTTPError(404, R.UNKNOWN_BAN)
        user = self.fake.add_user(uid)
        return json_response({"reason": guild.bans[uid], "user": user.payload()})

    async def ban(self, request: web.Request) -> web.Response:
        """PUT /guilds/{g}/bans/{u}: bans (and removes the member)."""
        guild = self._guild(request)
        uid = parse_id(request.match_info["user_id"])
        require(guild, self.fake.bot_user.id, Perm.BAN_MEMBERS)
        member = guild.members.get(uid)
        if member is not None:
            self._outranks(guild, member)
        guild.bans[uid] = request[R.RECORD_KEY].reason
        user = self.fake.add_user(uid)
        self.fake.dispatch("GUILD_BAN_ADD", {"guild_id": str(guild.id), "user": user.payload()})
        if member is not None:
            self.fake.remove_member(guild.id, uid)
        return no_content()

    async def unban(self, request: web.Request) -> web.Response:
        """DELETE /guilds/{g}/bans/{u}."""
        guild = self._guild(request)
        uid = parse_id(request.match_info["user_id"])
        require(guild, self.fake.bot_user.id, Perm.BAN_MEMBERS)
        if guild.bans.pop(uid, "missing") == "missing":
            raise DiscordHTTPError(404, R.UNKNOWN_BAN)
        user = self.fake.add_user(uid)
        self.fake.dispatch("GUILD_BAN_REMOVE", {"guild_id": str(guild.id), "user": user.payload()})
        return no_content()


def require(guild: FakeGuild, bot_id: int, permission: int) -> None:
    """403 Missing Permissions unless the bot has `permission` in the guild."""
    if not guild.permissions(bot_id) & permission:
        raise DiscordHTTPError(403, R.MISSING_PERMISSIONS)


def parse_id(value: str) -> int:
    """Parse a snowflake from a URL (malformed → 400 Invalid Form Body, like Discord)."""
    try:
        return int(value)
    except ValueError:
        raise DiscordHTTPError(400, R.INVALID_FORM_BODY) from None
