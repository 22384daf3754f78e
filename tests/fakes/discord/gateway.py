"""Gateway websocket: HELLO/IDENTIFY/READY, heartbeats, RESUME replay, zlib-stream, op 7/9.

Sharding as Discord does it: IDENTIFY may carry `shard: [id, count]`; each shard is its own
session and receives only the events of its guilds (`(guild_id >> 22) % count`), events
without a guild (DMs, entitlements) on shard 0 only. A shard outside 0..count-1, or a count
other than `shard_count` when that is set, closes with 4010 Invalid shard; a shard with more
than `max_guilds_per_shard` guilds closes with 4011 Sharding required. With
`enforce_identify_rate`, an IDENTIFY sooner than `identify_spacing` seconds after the last
one accepted in its bucket (`shard_id % max_concurrency`) gets op 9 Invalid Session (d=false),
and every IDENTIFY is recorded in `identify_log` with its time, shard and bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import FakeDiscord

GUILDS, GUILD_MEMBERS, GUILD_MODERATION = 1 << 0, 1 << 1, 1 << 2
GUILD_MESSAGES = 1 << 9
# Events that Discord only sends when the matching intent was identified with.
EVENT_INTENTS = {
    "GUILD_CREATE": GUILDS,
    "GUILD_UPDATE": GUILDS,
    "GUILD_DELETE": GUILDS,
    "GUILD_ROLE_CREATE": GUILDS,
    "GUILD_ROLE_UPDATE": GUILDS,
    "GUILD_ROLE_DELETE": GUILDS,
    "CHANNEL_CREATE": GUILDS,
    "CHANNEL_UPDATE": GUILDS,
    "CHANNEL_DELETE": GUILDS,
    "GUILD_MEMBER_ADD": GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": GUILD_MEMBERS,
    "GUILD_BAN_ADD": GUILD_MODERATION,
    "GUILD_BAN_REMOVE": GUILD_MODERATION,
    "MESSAGE_DELETE": GUILD_MESSAGES,
}
#: Events whose guild is the payload's `id` (a guild object), not its `guild_id`.
GUILD_OBJECT_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})
INVALID_SHARD, SHARDING_REQUIRED = 4010, 4011


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's shard of a guild."""
    return (guild_id >> 22) % shard_count


@dataclass(frozen=True)
class IdentifyRecord:
    """One IDENTIFY as the gateway saw it: when (identify clock), which shard of how many,
    its bucket, and what came of it ("ready", "invalid_session" or the close code)."""

    at: float
    shard: int
    shard_count: int
    bucket: int
    outcome: str | int


@dataclass
class Session:
    """An identified gateway session: survives dropped sockets until invalidated."""

    id: str
    intents: int
    shard: list[int]
    seq: int = 0
    ready_seq: int = 0
    log: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    conn: Connection | None = None


@dataclass
class Connection:
    """One websocket connection from a client."""

    ws: web.WebSocketResponse
    request: web.Request
    compress: str | None
    compressor: Any = None
    session: Session | None = None
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    sent_seq: int = 0
    binary_frames: int = 0
    text_frames: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None


class Gateway:
    """Serves `/gateway`; `dispatch()` sends to the live session or buffers for RESUME."""

    def __init__(self, fake: FakeDiscord, heartbeat_interval_ms: int = 41250) -> None:
        """Create the gateway for `fake`; `heartbeat_interval_ms` goes into HELLO."""
        self.fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_heartbeats = True
        #: False: new websocket connections are refused with 503 (a Discord gateway outage).
        self.accepting = True
        #: The live session of each shard (an unsharded client is shard 0 of 1).
        self.sessions: dict[int, Session] = {}
        self.connections: list[Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.ready_count = 0
        #: Sharding: the count every IDENTIFY must carry (None: any), what GET /gateway/bot
        #: recommends (None: one shard per 1,000 guilds), and Discord's 2,500 per shard.
        self.shard_count: int | None = None
        self.recommended_shards: int | None = None
        self.max_guilds_per_shard = 2500
        #: IDENTIFY rate: one per bucket per `identify_spacing` s, on `identify_clock`.
        self.max_concurrency = 1
        self.identify_spacing = 5.0
        self.enforce_identify_rate = False
        self.identify_clock: Callable[[], float] = time.monotonic
        self.identify_log: list[IdentifyRecord] = []
        self.session_start_total = 1000

    @property
    def session(self) -> Session | None:
        """Shard 0's session (the only one of an unsharded client), else any live one."""
        return self.sessions.get(0) or next(iter(self.sessions.values()), None)

    @session.setter
    def session(self, value: Session | None) -> None:
        """Make `value` the only session (None: no session)."""
        self.sessions = {} if value is None else {value.shard[0]: value}

    def recommended(self) -> int:
        """GET /gateway/bot's `shards`."""
        if self.recommended_shards is not None:
            return self.recommended_shards
        return self.shard_count or max(1, -(-len(self.fake.guilds) // 1000))

    def session_start_limit(self) -> dict[str, int]:
        """GET /gateway/bot's `session_start_limit` (every IDENTIFY uses one start)."""
        return {
            "total": self.session_start_total,
            "remaining": max(0, self.session_start_total - len(self.identifies)),
            "reset_after": 14_400_000,
            "max_concurrency": self.max_concurrency,
        }

    def shard_guilds(self, shard: list[int]) -> list[Any]:
        """The guilds Discord sends to `shard` = [id, count]."""
        return [g for g in self.fake.guilds.values() if shard_of(g.id, shard[1]) == shard[0]]

    @property
    def connected(self) -> bool:
        """Whether every session has an open client socket (and there is one)."""
        return bool(self.sessions) and all(
            s.conn is not None and not s.conn.ws.closed for s in self.sessions.values()
        )

    # ------------------------------------------------------------- sending
    def session_for(self, guild_id: int | None) -> Session | None:
        """The session that receives the guild's events (shard 0 for events of no guild)."""
        for session in self.sessions.values():
            index, count = session.shard
            if (index == 0) if guild_id is None else shard_of(guild_id, count) == index:
                return session
        return None

    def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send an op 0 event to the session of its guild's shard (buffered while
        disconnected). Returns its seq (None: no session receives it)."""
        raw = data.get("id") if event in GUILD_OBJECT_EVENTS else data.get("guild_id")
        return self.dispatch_to(self.session_for(None if raw is None else int(raw)), event, data)

    def dispatch_to(self, session: Session | None, event: str, data: dict[str, Any]) -> int | None:
        """Send an op 0 event to `session`; its seq."""
        if session is None:
            return None
        needed = EVENT_INTENTS.get(event, 0)
        if needed and not session.intents & needed:
            return None
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.log.append((session.seq, payload))
        if session.conn is not None:
            session.conn.outbox.put_nowait(payload)
        return session.seq

    async def _writer(self, conn: Connection) -> None:
        """Send queued payloads in order (zlib-stream: one compressor, Z_SYNC_FLUSH)."""
        while (payload := await conn.outbox.get()) is not None:
            text = json.dumps(payload)
            try:
                if conn.compressor is not None:
                    data = conn.compressor.compress(text.encode()) + conn.compressor.flush(
                        zlib.Z_SYNC_FLUSH
                    )
                    await conn.ws.send_bytes(data)
                    conn.binary_frames += 1
                else:
                    await conn.ws.send_str(text)
                    conn.text_frames += 1
            except (ConnectionError, RuntimeError):
                return
            if payload.get("s") is not None:
                conn.sent_seq = payload["s"]
                self.fake._notify()

    # ------------------------------------------------------------ handling
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The websocket endpoint."""
        if not self.accepting:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        conn = Connection(ws, request, compress)
        if compress == "zlib-stream":
            conn.compressor = zlib.compressobj()
        # zstd-stream is not supported: fall back to uncompressed text frames, which
        # discord.py accepts as-is.
        self.connections.append(conn)
        writer = asyncio.create_task(self._writer(conn))
        conn.outbox.put_nowait(
            {
                "op": 10,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                "s": None,
                "t": None,
            }
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await self._close(conn, 4002)
                    break
                conn.received.append(payload)
                await self._on_payload(conn, payload)
        finally:
            conn.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
            conn.close_code = ws.close_code
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            self.fake._notify()
        return ws

    async def _on_payload(self, conn: Connection, payload: dict[str, Any]) -> None:
        """Handle one client payload by opcode."""
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            if self.ack_heartbeats:
                conn.outbox.put_nowait({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, data or {})
        elif op == 6:
            await self._resume(conn, data or {})
        elif op in (3, 4):
            pass  # presence / voice state updates: accepted and ignored
        elif op == 8:
            self._request_members(data or {})
        else:
            self.fake._violation("WS", f"op {op}", None, f"unknown gateway opcode {op}")
            await self._close(conn, 4001)

    def _check_token(self, token: str | None) -> bool:
        """Whether the IDENTIFY/RESUME token is the bot token."""
        return (token or "").removeprefix("Bot ") == self.fake.token

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        """op 2: validate, open a session, send READY and one GUILD_CREATE per guild."""
        self.identifies.append(data)
        if conn.session is not None:
            await self._close(conn, 4005)  # already authenticated
            return
        if not self._check_token(data.get("token")):
            await self._close(conn, 4004)
            return
        intents = int(data.get("intents", 0))
        if intents & GUILD_MEMBERS and not self.fake.members_intent_enabled:
            await self._close(conn, 4014)  # disallowed (privileged) intent
            return
        shard = data.get("shard") or [0, 1]
        index, count = self._shard_pair(shard)
        bucket = index % max(1, self.max_concurrency) if index >= 0 else 0
        now = self.identify_clock()

        def record(outcome: str | int) -> None:
            self.identify_log.append(IdentifyRecord(now, index, count, bucket, outcome))
            self.fake._notify()

        if not (count >= 1 and 0 <= index < count) or (
            self.shard_count is not None and count != self.shard_count
        ):
            record(INVALID_SHARD)
            await self._close(conn, INVALID_SHARD)
            return
        guilds = self.shard_guilds([index, count])
        if len(guilds) > self.max_guilds_per_shard:
            record(SHARDING_REQUIRED)
            await self._close(conn, SHARDING_REQUIRED)
            return
        if self.enforce_identify_rate and self._too_soon(bucket, now):
            record("invalid_session")
            conn.outbox.put_nowait({"op": 9, "d": False, "s": None, "t": None})
            return
        record("ready")
        session = Session(secrets.token_hex(16), intents, [index, count])
        self._attach(session, conn)
        self.dispatch_to(session, "READY", self.fake._ready_payload(session.id, session.shard))
        me = self.fake.bot_user.id
        for guild in guilds:
            self.dispatch_to(session, "GUILD_CREATE", guild.create_payload(guild.members[me]))
        session.ready_seq = session.seq
        self.ready_count += 1
        self.fake._notify()

    @staticmethod
    def _shard_pair(shard: Any) -> tuple[int, int]:
        """IDENTIFY's `shard` as (id, count); (-1, 0) when it is not two integers."""
        if (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
        ):
            return shard[0], shard[1]
        return -1, 0

    def _too_soon(self, bucket: int, now: float) -> bool:
        """Whether an IDENTIFY of `bucket` was accepted less than `identify_spacing` ago."""
        return any(
            r.bucket == bucket and r.outcome == "ready" and now - r.at < self.identify_spacing
            for r in self.identify_log
        )

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        """op 6: replay events after the client's seq, then RESUMED (op 9 if unknown)."""
        self.resumes.append(data)
        session = next((s for s in self.sessions.values() if s.id == data.get("session_id")), None)
        if session is None or not self._check_token(data.get("token")):
            conn.outbox.put_nowait({"op": 9, "d": False, "s": None, "t": None})
            return
        old = session.conn
        self._attach(session, conn)
        if old is not None and old is not conn:
            await self._close(old, 4000)
        last = data.get("seq") or 0
        for seq, payload in session.log:
            if seq > last:
                conn.outbox.put_nowait(payload)
        self.dispatch_to(session, "RESUMED", {})
        self.fake._notify()

    def _attach(self, session: Session, conn: Connection) -> None:
        """Make `conn` the live socket of `session` (a new session replaces its shard's)."""
        self.sessions[session.shard[0]] = session
        conn.session = session
        session.conn = conn

    def _request_members(self, data: dict[str, Any]) -> None:
        """op 8: answer with one GUILD_MEMBERS_CHUNK."""
        guild = self.fake.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        members = [
            m.payload()
            for m in guild.members.values()
            if (m.id in wanted if wanted else m.user.username.lower().startswith(query))
        ]
        limit = data.get("limit") or len(members)
        chunk = {
            "guild_id": str(guild.id),
            "members": members[:limit],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "nonce": data.get("nonce"),
        }
        self.dispatch("GUILD_MEMBERS_CHUNK", chunk)  # to the guild's shard

    # -------------------------------------------------------------- control
    async def _close(self, conn: Connection, code: int) -> None:
        """Stop the writer and close the socket with `code`."""
        conn.outbox.put_nowait(None)
        await conn.ws.close(code=code)

    def _targets(self, shard: int | None) -> list[Session]:
        """The session of `shard`, or every session (None)."""
        if shard is None:
            return list(self.sessions.values())
        return [self.sessions[shard]] if shard in self.sessions else []

    async def drop_connection(self, shard: int | None = None) -> None:
        """Abort the live socket(s) without a close frame; the sessions stay resumable."""
        for session in self._targets(shard):
            if session.conn is None:
                continue
            conn, session.conn = session.conn, None
            conn.outbox.put_nowait(None)
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        self.fake._notify()

    async def invalidate_session(self, resumable: bool = False, shard: int | None = None) -> None:
        """Send op 9; unless resumable, forget the session(s) so the client must IDENTIFY."""
        for session in self._targets(shard):
            if not resumable:
                del self.sessions[session.shard[0]]
            if session.conn is not None:
                session.conn.outbox.put_nowait({"op": 9, "d": resumable, "s": None, "t": None})

    async def request_reconnect(self, shard: int | None = None) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        for session in self._targets(shard):
            if session.conn is not None:
                session.conn.outbox.put_nowait({"op": 7, "d": None, "s": None, "t": None})

    @staticmethod
    def _session_ready(s: Session) -> bool:
        return bool(s.ready_seq and s.conn and s.conn.sent_seq >= s.ready_seq)

    def is_ready(self) -> bool:
        """Every session identified and had READY plus its GUILD_CREATEs written."""
        return bool(self.sessions) and all(map(self._session_ready, self.sessions.values()))

    def ready_shards(self) -> set[int]:
        """The shards whose READY and GUILD_CREATEs were written to their socket."""
        return {i for i, s in self.sessions.items() if self._session_ready(s)}

    async def wait_shards_ready(self, shards: set[int], timeout: float = 30.0) -> None:
        """Wait until each of `shards` is ready."""
        await self.fake.wait_for(
            lambda: shards <= self.ready_shards(), timeout=timeout, what=f"shards {shards} READY"
        )

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until `is_ready()`."""
        await self.fake.wait_for(self.is_ready, timeout=timeout, what="gateway READY")

    async def close_all(self) -> None:
        """Close every open socket (used by FakeDiscord.stop)."""
        for conn in self.connections:
            if not conn.ws.closed:
                conn.outbox.put_nowait(None)
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001)
