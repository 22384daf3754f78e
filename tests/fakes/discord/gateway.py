"""Gateway websocket: HELLO/IDENTIFY/READY, heartbeats, RESUME replay, zlib-stream, op 7/9."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
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
        self.session: Session | None = None
        self.connections: list[Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.ready_count = 0

    @property
    def connected(self) -> bool:
        """Whether a client socket is open and attached to a session."""
        s = self.session
        return s is not None and s.conn is not None and not s.conn.ws.closed

    # ------------------------------------------------------------- sending
    def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send an op 0 event to the session (buffered while disconnected). Returns its seq."""
        session = self.session
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
        session = Session(secrets.token_hex(16), intents, shard)
        self._attach(session, conn)
        self.dispatch("READY", self.fake._ready_payload(session.id, shard))
        for guild in self.fake.guilds.values():
            self.dispatch(
                "GUILD_CREATE", guild.create_payload(guild.members[self.fake.bot_user.id])
            )
        session.ready_seq = session.seq
        self.ready_count += 1
        self.fake._notify()

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        """op 6: replay events after the client's seq, then RESUMED (op 9 if unknown)."""
        self.resumes.append(data)
        session = self.session
        if (
            session is None
            or data.get("session_id") != session.id
            or not self._check_token(data.get("token"))
        ):
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
        self.dispatch("RESUMED", {})
        self.fake._notify()

    def _attach(self, session: Session, conn: Connection) -> None:
        """Make `conn` the live socket of `session`."""
        if session is not self.session:
            self.session = session
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
        self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # -------------------------------------------------------------- control
    async def _close(self, conn: Connection, code: int) -> None:
        """Stop the writer and close the socket with `code`."""
        conn.outbox.put_nowait(None)
        await conn.ws.close(code=code)

    async def drop_connection(self) -> None:
        """Abort the live socket without a close frame; the session stays resumable."""
        session = self.session
        if session is None or session.conn is None:
            return
        conn, session.conn = session.conn, None
        conn.outbox.put_nowait(None)
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
        self.fake._notify()

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9; unless resumable, forget the session so the client must IDENTIFY."""
        session = self.session
        if session is None:
            return
        if not resumable:
            self.session = None
        if session.conn is not None:
            session.conn.outbox.put_nowait({"op": 9, "d": resumable, "s": None, "t": None})

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        if self.session is not None and self.session.conn is not None:
            self.session.conn.outbox.put_nowait({"op": 7, "d": None, "s": None, "t": None})

    def is_ready(self) -> bool:
        """A client identified and READY plus every GUILD_CREATE were written to its socket."""
        s = self.session
        return bool(s and s.ready_seq and s.conn and s.conn.sent_seq >= s.ready_seq)

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
