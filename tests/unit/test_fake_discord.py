"""The Discord fake, exercised by the real, unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeRole
from tests.fakes.discord.fixtures import fake_discord_fixture  # noqa: F401 - "fake_discord"
from tests.fakes.discord.ratelimit import ROLE_ROUTE

#: A 3 × 2 PNG (IHDR says so), as discord.File would upload it.
TINY_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03\x00\x00\x00\x02\x08\x02\x00\x00\x00"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


class PingBot(commands.Bot):
    """A tiny bot: global /ping and /slow, guild-only /shop product add, a button, event logs."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.members = True
        super().__init__(
            command_prefix="!",
            intents=intents,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            guild_ready_timeout=0.05,
            max_messages=None,
        )
        self.guild_id = guild_id
        self.joined: list[discord.Member] = []
        self.events: list[str] = []
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        """Register commands and sync them globally and to the guild."""

        @self.tree.command(name="ping", description="Ping")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong", ephemeral=True)

        @self.tree.command(name="slow", description="Deferred reply")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("done", ephemeral=True)

        @self.tree.command(name="menu", description="Sends a button")
        async def menu(interaction: discord.Interaction) -> None:
            view = discord.ui.View()
            button = discord.ui.Button(label="Buy", custom_id="buy-1")

            async def clicked(inter: discord.Interaction) -> None:
                await inter.response.edit_message(content="bought", view=None)

            button.callback = clicked
            view.add_item(button)
            await interaction.response.send_message("pick", view=view, ephemeral=True)

        @self.tree.command(name="buy", description="Buy a product")
        async def buy(interaction: discord.Interaction, product: str) -> None:
            file = discord.File(io.BytesIO(b"KEY-123"), filename="license.txt")
            await interaction.response.send_message(f"bought {product}", file=file, ephemeral=True)

        @self.tree.command(name="chart", description="Deferred reply with files")
        async def chart(interaction: discord.Interaction, big: bool = False) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            if big:
                data = b"x" * (10 * 1024 * 1024 + 1)
                files = [discord.File(io.BytesIO(data), filename="big.bin")]
            else:
                files = [
                    discord.File(io.BytesIO(TINY_PNG), filename="chart.png", description="A dot"),
                    discord.File(io.BytesIO(b"hello"), filename="notes.txt"),
                ]
            try:
                await interaction.followup.send("here", files=files, ephemeral=True)
            except discord.HTTPException as exc:
                await interaction.followup.send(f"refused {exc.status} {exc.code}", ephemeral=True)

        @buy.autocomplete("product")
        async def complete(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
            names = ["gold", "silver", "golden-ticket"]
            return [Choice(name=n, value=n) for n in names if n.startswith(current)]

        shop = app_commands.Group(name="shop", description="Admin")
        product = app_commands.Group(name="product", description="Products", parent=shop)

        @product.command(name="add", description="Add a product")
        async def add(interaction: discord.Interaction, name: str, role: discord.Role) -> None:
            await interaction.response.send_message(f"{name}:{role.name}", ephemeral=True)

        guild = discord.Object(self.guild_id)
        self.tree.add_command(shop, guild=guild)
        self.synced = await self.tree.sync()
        self.synced += await self.tree.sync(guild=guild)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Skip discord.py's 5 s pause before a re-IDENTIFY (keeps the test fast)."""

    async def on_member_join(self, member: discord.Member) -> None:
        """Record joins."""
        self.joined.append(member)

    async def on_resumed(self) -> None:
        """Record RESUMED."""
        self.events.append("resumed")

    async def on_ready(self) -> None:
        """Record READY (fires again after a re-IDENTIFY)."""
        self.events.append("ready")


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, guild: FakeGuild) -> AsyncIterator[PingBot]:
    """Point discord.py at the fake, start the bot, wait for on_ready; always close/restore."""
    old_base, old_gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    bot = PingBot(guild.id)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_for(
            lambda: "ready" in bot.events or task.done(), timeout=10, what="on_ready"
        )
        if task.done():
            task.result()
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
def guild(fake_discord: FakeDiscord) -> FakeGuild:
    """A guild with a VIP role below the bot."""
    g = fake_discord.add_guild(name="Shop")
    fake_discord.add_role(g.id, "VIP", position=2)
    return g


def _role(guild: FakeGuild, name: str) -> FakeRole:
    return next(r for r in guild.roles.values() if r.name == name)


async def test_ready_and_guild_create(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """READY and GUILD_CREATE reach discord.py: on_ready fires and the guild has its roles."""
    async with running_bot(fake_discord, guild) as bot:
        await fake_discord.wait_ready()
        cached = bot.get_guild(guild.id)
        assert cached is not None and cached.name == "Shop"
        assert {r.name for r in cached.roles} == {"@everyone", "Bot", "VIP"}
        assert cached.me is not None and cached.me.top_role.name == "Bot"
        assert cached.get_role(_role(guild, "VIP").id).is_assignable()
        assert bot.user is not None and bot.user.id == fake_discord.bot_user_id
        assert fake_discord.connected and bot.events == ["ready"]


async def test_tree_sync_recorded(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """Global and guild bulk-overwrite syncs land in fake.synced_commands with ids."""
    async with running_bot(fake_discord, guild) as bot:
        global_names = {c["name"] for c in fake_discord.synced_commands["global"]}
        assert global_names == {"ping", "slow", "menu", "buy", "chart"}
        (shop,) = fake_discord.synced_commands[guild.id]
        assert shop["name"] == "shop" and shop["options"][0]["type"] == 2
        assert {c.id for c in bot.synced} == {
            int(c["id"]) for scope in fake_discord.synced_commands.values() for c in scope
        }


async def test_ping_reply_is_ephemeral(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """/ping gets an ephemeral type-4 reply through the callback route."""
    async with running_bot(fake_discord, guild):
        inter = await fake_discord.invoke_command(guild.id, 555, "ping")
        message = await inter.wait_message()
        assert message["content"] == "pong" and message["flags"] & 64
        assert inter.responses[0]["kind"] == "callback" and inter.responses[0]["type"] == 4
        assert inter.is_ephemeral()


async def test_deferred_reply_and_followup(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """An ephemeral defer (type 5, flags 64) followed by a followup stays ephemeral."""
    async with running_bot(fake_discord, guild):
        inter = await fake_discord.invoke_command(guild.id, 555, "slow")
        message = await inter.wait_message()
        assert message["content"] == "done"
        assert [(r["kind"], r["type"]) for r in inter.responses] == [
            ("callback", 5),
            ("followup", None),
        ]
        assert inter.responses[0]["data"]["flags"] == 64 and inter.is_ephemeral()


async def test_subcommand_group_with_role_option(
    fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    """Nested SUB_COMMAND_GROUP/SUB_COMMAND options and a resolved role reach the handler."""
    vip = _role(guild, "VIP")
    async with running_bot(fake_discord, guild):
        inter = await fake_discord.invoke_command(
            guild.id, 555, "shop product add", {"name": "Gold", "role": vip.id}
        )
        assert (await inter.wait_message())["content"] == "Gold:VIP"


async def test_autocomplete_and_multipart_reply(
    fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    """Autocomplete (type 4 → callback 8) and a reply with a file (multipart payload_json)."""
    async with running_bot(fake_discord, guild):
        focused = {"name": "product", "value": "go", "focused": True}
        complete = await fake_discord.autocomplete(guild.id, 555, "buy", [focused])
        assert [c["value"] for c in await complete.wait_choices()] == ["gold", "golden-ticket"]
        inter = await fake_discord.invoke_command(guild.id, 555, "buy", {"product": "gold"})
        message = await inter.wait_message()
        assert message["content"] == "bought gold" and inter.is_ephemeral()
        (attachment,) = message["attachments"]
        assert attachment["filename"] == "license.txt" and attachment["size"] == 7
        callback = next(
            r for r in fake_discord.requests if r.path.endswith("/callback") and r.files
        )
        assert callback.json["data"]["attachments"][0]["filename"] == "license.txt"


async def test_followup_files_are_hosted_as_discord_describes_them(
    fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    """A followup after a defer with two files (multipart payload_json + files[n]): each
    attachment takes its filename and description from the payload's `attachments` entry,
    its content type from the name (not discord.py's octet-stream part header), an image its
    width and height; the bytes are served at its url. Over the upload limit: 413 / 40005."""
    async with running_bot(fake_discord, guild):
        inter = await fake_discord.invoke_command(guild.id, 555, "chart")
        message = await inter.wait_message(predicate=lambda m: bool(m["attachments"]))
        png, text = message["attachments"]
        assert (png["filename"], png["content_type"], png["description"]) == (
            "chart.png",
            "image/png",
            "A dot",
        )
        assert (png["width"], png["height"], png["size"]) == (3, 2, len(TINY_PNG))
        assert text["content_type"] == "text/plain; charset=utf-8" and "width" not in text
        request = next(r for r in fake_discord.requests if r.files)
        assert [f.field for f in request.files] == ["files[0]", "files[1]"]
        assert {f.content_type for f in request.files} == {"application/octet-stream"}
        async with aiohttp.ClientSession() as session, session.get(png["url"]) as got:
            assert got.content_type == "image/png" and await got.read() == TINY_PNG
        big = await fake_discord.invoke_command(guild.id, 555, "chart", {"big": True})
        refused = await big.wait_message(predicate=lambda m: "refused" in m["content"])
        assert refused["content"] == "refused 413 40005" and not refused["attachments"]


async def test_button_click_updates_message(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """A component click is routed to the view and its UPDATE_MESSAGE edits the message."""
    async with running_bot(fake_discord, guild):
        menu = await fake_discord.invoke_command(guild.id, 555, "menu")
        await menu.wait_message()
        click = await fake_discord.click_component(guild.id, 555, "buy-1")
        message = await click.wait_message()
        assert message["content"] == "bought" and message["components"] == []
        assert click.responses[0]["type"] == 7 and click.is_ephemeral()


async def test_member_join_event(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """GUILD_MEMBER_ADD reaches on_member_join even with the member cache off."""
    async with running_bot(fake_discord, guild) as bot:
        fake_discord.add_member(guild.id, 777, username="buyer", pending=True)
        await fake_discord.wait_for(lambda: bot.joined, what="on_member_join")
        assert bot.joined[0].id == 777 and bot.joined[0].pending


async def test_oauth_add_member_dispatches_member_add(
    fake_discord: FakeDiscord, guild: FakeGuild
) -> None:
    """PUT /guilds/{g}/members/{u} with a user's guilds.join token reaches on_member_join:
    pending under Membership Screening, a full member when given a role."""
    guild.screening = True
    vip = _role(guild, "VIP")
    grants = [fake_discord.grant_oauth(uid) for uid in (7, 8)]
    async with running_bot(fake_discord, guild) as bot, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {fake_discord.token}"}
        for grant, roles in zip(grants, ([], [str(vip.id)]), strict=True):
            url = f"{fake_discord.api_base}/guilds/{guild.id}/members/{grant.user_id}"
            body = {"access_token": grant.access_token, "roles": roles}
            async with http.put(url, json=body, headers=headers) as reply:
                assert reply.status == 201
        await fake_discord.wait_for(lambda: len(bot.joined) == 2, what="two joins")
    assert [(m.id, m.pending, [r.id for r in m.roles[1:]]) for m in bot.joined] == [
        (7, True, []),
        (8, False, [vip.id]),
    ]


async def test_role_errors(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """Roles at/above the bot give 50013; unknown member 10007; unknown role 10011."""
    high = fake_discord.add_role(guild.id, "Admin", position=20)
    fake_discord.add_member(guild.id, 777)
    async with running_bot(fake_discord, guild) as bot:
        with pytest.raises(discord.Forbidden) as forbidden:
            await bot.http.add_role(guild.id, 777, high.id, reason="test")
        assert forbidden.value.code == 50013
        with pytest.raises(discord.NotFound) as unknown_member:
            await bot.http.add_role(guild.id, 999, _role(guild, "VIP").id)
        assert unknown_member.value.code == 10007
        with pytest.raises(discord.NotFound) as unknown_role:
            await bot.http.add_role(guild.id, 777, 123)
        assert unknown_role.value.code == 10011
        statuses = [(op.op, op.status, op.reason) for op in fake_discord.role_ops]
        assert statuses == [("add", 403, "test"), ("add", 404, None), ("add", 404, None)]
        assert fake_discord.invalid_request_count == 1


async def test_429_storm_is_retried(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """Injected 429s (Via + JSON) and the per-guild bucket are retried by discord.py."""
    vip = _role(guild, "VIP")
    users = [801, 802, 803, 804, 805]
    for uid in users:
        fake_discord.add_member(guild.id, uid, dispatch=False)
    async with running_bot(fake_discord, guild) as bot:
        fault = fake_discord.inject(lambda m, p, t: t == ROLE_ROUTE, status=429, count=3)
        await bot.http.add_role(guild.id, users[0], vip.id)
        assert fault.hits == 3
        assert [op.status for op in fake_discord.role_ops] == [429, 429, 429, 204]
        # Another client drains the per-guild bucket, so discord.py's next call hits a real 429.
        fake_discord.set_role_rate_limit(limit=2, per_seconds=0.6)
        headers = {"Authorization": f"Bot {fake_discord.token}"}
        async with aiohttp.ClientSession(headers=headers) as other:
            for uid in users[1:3]:
                url = f"{fake_discord.api_base}/guilds/{guild.id}/members/{uid}/roles/{vip.id}"
                async with other.put(url) as resp:
                    assert resp.status == 204 and resp.headers["X-RateLimit-Remaining"] in (
                        "1",
                        "0",
                    )
        for uid in users[3:]:
            await bot.http.add_role(guild.id, uid, vip.id)
        assert all(fake_discord.has_role(guild.id, u, vip) for u in users)
        assert [op.status for op in fake_discord.role_ops[4:]] == [204, 204, 429, 204, 204]


async def test_resume_replays_missed_events(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """After an abrupt drop the client RESUMEs and gets the event dispatched meanwhile."""
    async with running_bot(fake_discord, guild) as bot:
        await fake_discord.drop_connection()
        assert not fake_discord.connected
        fake_discord.add_member(guild.id, 778)
        await fake_discord.wait_for(lambda: bot.joined and "resumed" in bot.events)
        assert bot.joined[0].id == 778
        assert len(fake_discord.gateway.identifies) == 1 and len(fake_discord.gateway.resumes) == 1


async def test_invalid_session_reidentifies(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """op 9 d=false makes the client IDENTIFY again and on_ready fire a second time."""
    async with running_bot(fake_discord, guild) as bot:
        await fake_discord.invalidate_session()
        await fake_discord.wait_for(lambda: bot.events.count("ready") == 2)
        assert len(fake_discord.gateway.identifies) == 2
        await fake_discord.wait_ready()


async def test_zlib_stream_is_used(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """discord.py asks for zlib-stream and the fake answers with binary zlib frames only."""
    async with running_bot(fake_discord, guild):
        conn = fake_discord.gateway.connections[-1]
        assert conn.compress == "zlib-stream"
        assert conn.binary_frames >= 3 and conn.text_frames == 0


async def test_closed_dms_are_refused(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """A DM to a user with closed DMs fails with 403 code 50007; an open one is recorded."""
    fake_discord.add_member(guild.id, 901)
    fake_discord.add_member(guild.id, 902)
    fake_discord.set_dm_closed(902)
    async with running_bot(fake_discord, guild) as bot:
        await (await bot.create_dm(discord.Object(901))).send("hello")
        with pytest.raises(discord.Forbidden) as closed:
            await (await bot.create_dm(discord.Object(902))).send("hello")
        assert closed.value.code == 50007
        assert [(uid, m["content"]) for uid, m in fake_discord.dms] == [(901, "hello")]


async def test_channel_message_edit_and_delete(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """The bot edits (PATCH) and deletes its channel message; afterwards, and for a message
    deleted by hand, Discord answers 404 10008 Unknown Message; a wrong channel is 10003."""
    async with running_bot(fake_discord, guild) as bot:
        channel = bot.get_partial_messageable(guild.default_channel.id)
        message = await channel.send("v1", embed=discord.Embed(title="a"))
        await message.edit(content="v2", embed=discord.Embed(title="b"))
        stored = fake_discord.messages[message.id]
        assert (stored["content"], stored["embeds"][0]["title"]) == ("v2", "b")
        assert stored["edited_timestamp"] is not None
        assert [m["content"] for _, m in fake_discord.message_edits] == ["v2"]
        await message.delete()
        assert message.id not in fake_discord.messages
        with pytest.raises(discord.NotFound) as gone:
            await message.edit(content="v3")
        assert gone.value.code == 10008
        with pytest.raises(discord.NotFound) as gone:
            await message.delete()
        assert gone.value.code == 10008
        by_hand = await channel.send("panel")
        fake_discord.delete_message(by_hand.id)
        with pytest.raises(discord.NotFound) as gone:
            await by_hand.edit(content="v2")
        assert gone.value.code == 10008
        with pytest.raises(discord.NotFound) as unknown:
            await bot.http.delete_message(1234, by_hand.id)
        assert unknown.value.code == 10003
    assert fake_discord.violations == []


async def test_no_violations_from_discord_py(fake_discord: FakeDiscord, guild: FakeGuild) -> None:
    """A full session of real discord.py traffic produces zero OpenAPI violations."""
    async with running_bot(fake_discord, guild):
        inter = await fake_discord.invoke_command(guild.id, 555, "slow")
        await inter.wait_message()
    assert fake_discord.requests and fake_discord.violations == []
    assert all(r.route_template for r in fake_discord.requests)


async def test_validator_flags_bad_requests(fake_discord: FakeDiscord) -> None:
    """Invalid bodies and unknown routes ARE recorded as violations (the validator works)."""
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    url = f"{fake_discord.api_base}/applications/{fake_discord.application_id}/commands"
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.put(url, json=[{"name": "x" * 40, "description": 5}]) as resp:
            assert resp.status == 200
        async with session.get(f"{fake_discord.api_base}/no/such/route") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 0
    errors = [v.error for v in fake_discord.violations]
    assert len(errors) == 2 and "body 0/" in errors[0] and "unknown path" in errors[1]
    fake_discord.violations.clear()  # expected ones: keep the fixture's teardown check green


# sha256 of ../shared/specs/discord-openapi.json when it was vendored; kept here so the check
# holds on a machine without ../shared instead of passing silently.
SPEC_SHA256 = "8c1d0707ccdf8e380a86dfba04058820a66435c1b69d5ed82e04dd8c0520dd73"


def test_vendored_spec_matches_shared() -> None:
    """The spec copy shipped in tests/ is byte-for-byte Discord's spec, by checksum and copy."""
    import gzip
    import hashlib

    from tests.fakes.discord.openapi import SHARED_SPEC, VENDORED_SPEC

    vendored = gzip.decompress(VENDORED_SPEC.read_bytes())
    assert hashlib.sha256(vendored).hexdigest() == SPEC_SHA256
    if SHARED_SPEC.exists():  # and ../shared, where present, has not moved on without us
        assert SHARED_SPEC.read_bytes() == vendored
