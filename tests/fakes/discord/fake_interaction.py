"""FakeInteraction: one interaction sent to the bot and a snapshot of every answer to it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeDiscord

MESSAGE_KINDS = ("callback", "followup", "edit_original", "edit_message")


class FakeInteraction:
    """One interaction sent to the bot, and everything the bot answered to it."""

    def __init__(self, fake: FakeDiscord, payload: dict[str, Any]) -> None:
        """Wrap the INTERACTION_CREATE payload that was dispatched."""
        self.fake = fake
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id = int(payload["guild_id"]) if "guild_id" in payload else None
        self.channel_id = int(payload["channel_id"])
        self.user_id = int((payload.get("member") or payload)["user"]["id"])
        self.created_at = asyncio.get_running_loop().time()
        self.responses: list[dict[str, Any]] = []
        self.callback_type: int | None = None
        self.original_message_id: int | None = None
        self.message_ids: list[int] = []
        self.seq: int | None = None

    def __repr__(self) -> str:
        """Short description for assertion messages."""
        return f"<FakeInteraction id={self.id} type={self.type} responses={len(self.responses)}>"

    @property
    def acknowledged(self) -> bool:
        """Whether the initial callback was accepted."""
        return self.callback_type is not None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Current state of every message that belongs to this interaction."""
        return [self.fake.messages[m] for m in self.message_ids if m in self.fake.messages]

    def _record(self, kind: str, payload: Any, message: dict[str, Any] | None) -> dict[str, Any]:
        """Append a response record (with a snapshot of the message) and wake waiters."""
        body = payload if isinstance(payload, dict) else {}
        message = copy.deepcopy(message)
        record = {
            "kind": kind,
            "type": body.get("type") if kind == "callback" else None,
            "data": (body.get("data") or {}) if kind == "callback" else body,
            "payload": payload,
            "message": message,
            "ephemeral": bool(message and message["flags"] & 64),
            "time": asyncio.get_running_loop().time(),
        }
        self.responses.append(record)
        self.fake._notify()
        return record

    async def wait_response(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the interaction callback; return the first response record."""
        await self.fake.wait_for(
            lambda: self.responses, timeout=timeout, what=f"response to {self}"
        )
        return self.responses[0]

    async def wait_message(
        self, timeout: float = 10.0, predicate: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """Wait for a message the bot sent or edited for this interaction (incl. its "flags")."""

        def found() -> dict[str, Any] | None:
            """The first matching message-carrying record's message, or None."""
            for record in self.responses:
                msg = record["message"]
                carries = any(k in record["data"] for k in ("content", "embeds", "components"))
                wanted = record["kind"] in MESSAGE_KINDS and msg is not None and carries
                if wanted and (predicate is None or predicate(msg)):
                    return msg
            return None

        return await self.fake.wait_for(found, timeout=timeout, what=f"message for {self}")

    async def wait_choices(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait for an autocomplete result (callback type 8); return its choices."""
        record = await self.wait_response(timeout)
        return list(record["data"].get("choices") or [])

    def is_ephemeral(self) -> bool:
        """True only if the bot answered and every message it produced had flags & 64."""
        produced = [r for r in self.responses if r["message"] is not None]
        return bool(produced) and all(r["ephemeral"] for r in produced)
