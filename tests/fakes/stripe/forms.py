"""Decoding of Stripe's bracket-nested form encoding (`a[b][0][c]=v`) into typed Python values."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

#: Leaf keys whose values the SDK sends as decimal strings and the fake treats as integers.
INT_FIELDS = frozenset(
    {
        "amount",
        "billing_cycle_anchor",
        "cancel_at",
        "expires_at",
        "gt",
        "gte",
        "interval_count",
        "limit",
        "lt",
        "lte",
        "quantity",
        "trial_end",
        "trial_period_days",
        "unit_amount",
    }
)

#: Leaf keys whose values the SDK sends as "true"/"false" and the fake treats as booleans.
BOOL_FIELDS = frozenset(
    {
        "active",
        "allow_promotion_codes",
        "cancel_at_period_end",
        "delivery_success",
        "disabled",
        "enabled",
        "invoice_now",
        "is_default",
        "prorate",
    }
)

#: Subtrees holding user data: their values stay strings whatever their key is.
OPAQUE_FIELDS = frozenset({"metadata"})

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART_RE = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A form key that cannot be placed in the nested structure (e.g. `a=1&a[b]=2`)."""


def split_key(key: str) -> list[str]:
    """Split `line_items[0][price_data][currency]` into `["line_items", "0", "price_data", ...]`.

    An empty bracket pair (`expand[]`) yields an empty part, meaning "append".
    """
    match = _KEY_RE.match(key)
    if match is None:
        return [key]
    return [match.group(1), *_PART_RE.findall(match.group(2))]


def _place(root: dict[str, Any], parts: list[str], value: str) -> None:
    """Store `value` at the path `parts` inside `root`, creating intermediate dicts."""
    node: dict[str, Any] = root
    for index, part in enumerate(parts[:-1]):
        key = part if part else str(len(node))
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise FormError(f"conflicting keys at {'.'.join(parts[: index + 1])}")
        node = child
    last = parts[-1] if parts[-1] else str(len(node))
    if isinstance(node.get(last), dict):
        raise FormError(f"conflicting keys at {'.'.join(parts)}")
    node[last] = value


def _listify(value: Any, key: str = "") -> Any:
    """Turn dicts whose keys are exactly 0..n-1 into lists, recursively (not inside metadata)."""
    if not isinstance(value, dict) or key in OPAQUE_FIELDS:
        return value
    converted = {child_key: _listify(child, child_key) for child_key, child in value.items()}
    if converted and all(key.isdigit() for key in converted):
        indices = sorted(int(key) for key in converted)
        if indices == list(range(len(indices))):
            return [converted[str(i)] for i in indices]
    return converted


def coerce(value: Any, key: str = "") -> Any:
    """Convert known integer and boolean leaves from strings; leave metadata and `""` alone."""
    if isinstance(value, dict):
        if key in OPAQUE_FIELDS:
            return value
        return {child_key: coerce(child, child_key) for child_key, child in value.items()}
    if isinstance(value, list):
        return [coerce(item, key) for item in value]
    if key in INT_FIELDS and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in BOOL_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


def decode_pairs(pairs: list[tuple[str, str]], *, typed: bool = True) -> dict[str, Any]:
    """Build the nested params dict from decoded `(key, value)` pairs."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _place(root, split_key(key), value)
    nested = _listify(root)
    return coerce(nested) if typed else nested


def decode_form(body: str, *, typed: bool = True) -> dict[str, Any]:
    """Decode a urlencoded body or query string the way Stripe's API reads it.

    Empty values are kept (the SDK sends `""` to unset a field). With `typed`, known integer
    and boolean fields are converted (see `INT_FIELDS`, `BOOL_FIELDS`).
    """
    return decode_pairs(parse_qsl(body, keep_blank_values=True), typed=typed)
