"""Message objects: build from a create request, apply edits, find components by custom_id."""

from __future__ import annotations

from typing import Any

from .models import iso_now


def build_message(
    message_id: int,
    channel_id: int,
    author: dict[str, Any],
    body: dict[str, Any],
    *,
    flags: int = 0,
    guild_id: int | None = None,
    application_id: int | None = None,
    message_type: int = 0,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message object as Discord returns it, built from a create-message request body."""
    data: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": message_type,
        "author": author,
        "content": body.get("content") or "",
        "embeds": body.get("embeds") or [],
        "components": body.get("components") or [],
        "attachments": attachments or [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": bool(body.get("tts")),
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if application_id is not None:
        data["application_id"] = str(application_id)
        data["webhook_id"] = str(application_id)
    if body.get("poll"):
        data["poll"] = body["poll"]
    return data


def apply_edit(message: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Apply a PATCH body to a stored message (ephemeral flag kept, LOADING cleared)."""
    for key in ("content", "embeds", "components"):
        if key in body:
            message[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
    if "attachments" in body and body["attachments"] is not None:
        keep = {str(a.get("id")) for a in body["attachments"]}
        message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
    message["flags"] = (message["flags"] & ~128) | (int(body.get("flags") or 0) & ~(64 | 128))
    message["edited_timestamp"] = iso_now()
    return message


def find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    """Depth-first search for a component by custom_id (rows, sections, containers, labels)."""
    for comp in components:
        if comp.get("custom_id") == custom_id:
            return comp
        children = list(comp.get("components") or [])
        children += [comp[k] for k in ("accessory", "component") if isinstance(comp.get(k), dict)]
        found = find_component(children, custom_id)
        if found is not None:
            return found
    return None
