"""Thousands of generated bad webhook requests against one running bot: 4xx, no state change."""

from __future__ import annotations

import asyncio
import copy
import json
import string
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fakes.stripe import sign_payload
from tests.harness import WEBHOOK_SECRET
from tests.shop import BUYER, Shop

BATCHES = 900  # hypothesis examples, six requests each (plus a few hand-written big ones)
CONCURRENCY = 32
MAX_BODY = 1024 * 1024
EVENT_TYPES = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
]
# Signature header variants; only "good" is a valid signature of the body that is sent.
BAD_SIGNINGS = [
    "missing",
    "empty",
    "wrong_secret",
    "stale",
    "tampered",
    "other_body",
    "v0_only",
    "no_timestamp",
    "bad_timestamp",
    "two_wrong_v1",
    "garbage",
]
CONTENT_TYPES = [
    "application/json; charset=utf-8",
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json; charset=latin-1",
    "",
    None,
]
ORDER_REF = "__ORDER__"  # replaced by the real pending order's id when sent


@dataclass(frozen=True)
class Case:
    """One request: what is wrong with it, its body and how its signature is made."""

    flaw: str
    body: bytes
    signing: str = "good"
    content_type: str | None = "application/json; charset=utf-8"
    garbage: str = ""  # header text for the "garbage" signing, or the byte to tamper
    # A correctly signed, well-formed event envelope: the bot may store it (200) but must
    # not let it change any order.
    envelope_ok: bool = False


# ---------------------------------------------------------------- strategies
header_text = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=120)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from([ORDER_REF, "0", "-1", "cs_test_fuzz", "pi_fuzz", "sub_fuzz", "usd"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# Keys our code reads from event objects, plus anything else.
OBJECT_KEYS = [
    "id",
    "client_reference_id",
    "payment_status",
    "amount_total",
    "currency",
    "metadata",
    "payment_intent",
    "subscription",
    "customer",
    "refunded",
    "charge",
    "items",
    "lines",
    "status",
    "ended_at",
    "parent",
]
objects = st.dictionaries(
    st.sampled_from(OBJECT_KEYS) | st.text(max_size=8), json_values, max_size=6
)
# Surrogates are legal in JSON escapes (`"\ud800"`) but not in UTF-8 or SQLite text.
odd_text = st.text(st.characters(categories=["Cs", "Co", "Cc", "So", "Mn"]), min_size=1, max_size=6)
event_ids = st.builds(lambda s: f"evt_fuzz_{s}", st.text(max_size=16) | odd_text)
WRONG_TYPES = {
    "id": st.one_of(
        st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2), st.floats()
    ),
    "type": st.one_of(
        st.integers(), st.none(), st.dictionaries(st.text(max_size=3), st.text(max_size=3))
    ),
    "created": st.one_of(
        st.text(max_size=10), st.floats(), st.none(), st.lists(st.integers(), max_size=2)
    ),
    "data": st.one_of(
        st.text(max_size=10), st.integers(), st.none(), st.lists(json_values, max_size=2)
    ),
}


def dumps(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # lone surrogates → invalid UTF-8 bytes


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed Stripe event envelope around an arbitrary object."""
    return {
        "id": draw(event_ids),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": draw(st.integers(min_value=0, max_value=2**40) | st.integers()),
        "data": {"object": draw(objects)},
        "livemode": False,
        "type": draw(st.sampled_from(EVENT_TYPES) | st.text(max_size=30)),
    }


def bad_envelope(draw: st.DrawFn, event: dict[str, Any]) -> Case:
    """Correctly signed JSON that is not a Stripe event: a key missing or of the wrong type."""
    event = copy.deepcopy(event)
    how = draw(st.sampled_from(["drop", "retype", "object"]))
    key = draw(st.sampled_from(sorted(WRONG_TYPES)))
    if how == "drop":
        del event[key]
    elif how == "retype":
        event[key] = draw(WRONG_TYPES[key])
    elif draw(st.booleans()):
        key = "data.object"
        del event["data"]["object"]
    else:
        key = "data.object"
        event["data"]["object"] = draw(
            st.one_of(
                st.text(max_size=8), st.lists(json_values, max_size=2), st.integers(), st.none()
            )
        )
    return Case(f"envelope {how} {key}", dumps(event, draw(st.booleans())))


def not_an_event(draw: st.DrawFn, event: dict[str, Any]) -> Case:
    """Signed bodies that are not JSON objects at all, or not UTF-8."""
    kind = draw(st.sampled_from(["bytes", "json_value", "truncated", "bom", "trailing", "latin1"]))
    encoded = dumps(event, draw(st.booleans()))
    if kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "json_value":
        body = dumps(draw(json_scalars | st.lists(json_values, max_size=3)), True)
    elif kind == "truncated":
        body = encoded[: draw(st.integers(0, max(len(encoded) - 1, 0)))]
    elif kind == "bom":
        body = b"\xef\xbb\xbf" + encoded
    elif kind == "trailing":
        body = encoded + draw(st.sampled_from([b"}", b",", b"x", b"\x00", b" {}", b"]"]))
    else:  # Latin-1 bytes where UTF-8 is required
        text = draw(st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1))
        body = json.dumps({**event, "type": text}, ensure_ascii=False).encode("latin-1", "replace")
    return Case(f"not an event ({kind})", body)


def badly_signed(draw: st.DrawFn, event: dict[str, Any]) -> Case:
    """A real-looking event (or bytes) whose signature is missing, wrong, stale or mangled."""
    body = (
        dumps(event, draw(st.booleans())) if draw(st.booleans()) else draw(st.binary(max_size=120))
    )
    signing = draw(st.sampled_from(BAD_SIGNINGS))
    garbage = draw(header_text) if signing in ("garbage", "tampered") else ""
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    return Case(f"signature {signing}", body, signing, content_type, garbage)


@st.composite
def batches(draw: st.DrawFn) -> list[Case]:
    """Six requests around one generated event: one per kind of flaw, plus the signed event."""
    event = draw(events())
    return [
        badly_signed(draw, event),
        badly_signed(draw, event),
        bad_envelope(draw, event),
        bad_envelope(draw, event),
        not_an_event(draw, event),
        Case(
            "signed event, junk object",
            dumps(event, draw(st.booleans())),
            content_type=draw(st.sampled_from(CONTENT_TYPES)),
            envelope_ok=True,
        ),
    ]


def generate_cases() -> list[Case]:
    """Run hypothesis once, deterministically, collecting every generated request."""
    collected: list[Case] = []

    @settings(
        max_examples=BATCHES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batches())
    def collect(batch: list[Case]) -> None:
        collected.extend(batch)

    collect()
    return collected


def oversized_cases() -> list[Case]:
    """Bodies at and past the 1 MiB limit (too big for hypothesis to generate cheaply)."""
    padding = b" " * MAX_BODY
    return [
        Case("1 MiB + 1, signed", b"{}" + padding[: MAX_BODY - 1]),
        Case("2 MiB, unsigned", padding * 2, "missing"),
        Case("1 MiB + 1, chunked", b"{}" + padding[: MAX_BODY - 1], content_type="chunked"),
        Case("exactly 1 MiB of JSON whitespace", b"{}" + padding[: MAX_BODY - 2]),
    ]


@pytest.fixture(scope="module")
def fuzz_cases() -> list[Case]:
    return generate_cases() + oversized_cases()


# ------------------------------------------------------------------- sending
def signature_for(case: Case, body: bytes) -> str | None:
    now = int(time.time())
    good = sign_payload(body, WEBHOOK_SECRET, now)
    digest = good.split("v1=")[1]
    return {
        "good": good,
        "missing": None,
        "empty": "",
        "wrong_secret": sign_payload(body, "whsec_not_the_secret", now),
        "stale": sign_payload(body, WEBHOOK_SECRET, now - 301 - len(body) % 3600),
        "tampered": good,
        "other_body": sign_payload(body + b" ", WEBHOOK_SECRET, now),
        "v0_only": f"t={now},v0={digest}",
        "no_timestamp": f"v1={digest}",
        "bad_timestamp": f"t=now,v1={digest}",
        "two_wrong_v1": f"t={now},v1={'0' * 64},v1={digest[::-1]}",
        "garbage": case.garbage,
    }[case.signing]


def wire_body(case: Case, order_id: int) -> bytes:
    body = case.body.replace(ORDER_REF.encode(), str(order_id).encode())
    if case.signing == "tampered":  # signed, then one byte changed
        flip = len(case.garbage) % max(len(body), 1)
        body = (
            body[:flip] + bytes([(body[flip : flip + 1] or b"\x00")[0] ^ 0x20]) + body[flip + 1 :]
        )
    return body


async def send(session: aiohttp.ClientSession, url: str, case: Case, order_id: int) -> int:
    signed = case.body.replace(ORDER_REF.encode(), str(order_id).encode())
    body = wire_body(case, order_id)
    headers: dict[str, str] = {}
    signature = signature_for(case, signed)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    data: Any = body
    if case.content_type == "chunked":

        async def chunks() -> Any:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        data = chunks()
    elif case.content_type is not None:
        headers["Content-Type"] = case.content_type
    try:
        async with session.post(url, data=data, headers=headers) as response:
            await response.read()
            return response.status
    except aiohttp.ClientResponseError as exc:
        return exc.status
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        # aiohttp may close the connection while we are still sending a refused big body
        return -1 if len(body) > MAX_BODY else -2


def snapshot(shop: Shop) -> dict[str, Any]:
    bot = shop.bot
    return {
        "orders": [tuple(r) for r in bot.query("SELECT * FROM orders ORDER BY id")],
        "entitlements": bot.scalar("SELECT COUNT(*) FROM entitlements"),
        "jobs": bot.scalar("SELECT COUNT(*) FROM delivery_jobs"),
        "grants": bot.scalar("SELECT COUNT(*) FROM role_grants"),
    }


async def test_webhook_fuzz_never_5xx_never_changes_state(
    shop: Shop, fuzz_cases: list[Case]
) -> None:
    """5,000+ generated bad webhook requests: never 5xx, nothing applied, still serves after."""
    started = time.monotonic()
    await shop.add_product()
    session_id = await shop.buy(BUYER)
    order_id = shop.bot.scalar("SELECT id FROM orders")
    before = snapshot(shop)
    events_before = shop.bot.scalar("SELECT COUNT(*) FROM webhook_events")
    url = f"{shop.bot.url}/webhooks/stripe"
    results: list[tuple[Case, int]] = []
    slots = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(case: Case) -> None:
            async with slots:
                results.append((case, await send(session, url, case, order_id)))

        await asyncio.gather(*(one(case) for case in fuzz_cases))
    sent_in = time.monotonic() - started

    assert len(results) >= 5_000
    server_errors = [(c.flaw, c.body[:160], s) for c, s in results if s >= 500 or s == -2]
    examples = "\n".join(map(repr, list(dict.fromkeys(server_errors))[:6]))
    assert not server_errors, f"{len(server_errors)} answered 5xx or dropped, e.g.\n{examples}"
    wrong = [
        (c.flaw, c.signing, c.body[:160], s)
        for c, s in results
        if not c.envelope_ok and not (400 <= s < 500 or s == -1)
    ]
    examples = "\n".join(map(repr, list(dict.fromkeys(wrong))[:6]))
    assert not wrong, f"{len(wrong)} bad requests were not refused, e.g.\n{examples}"
    assert shop.bot.proc is not None and shop.bot.proc.poll() is None, "the bot died"

    # Only correctly signed, well-formed envelopes may have been stored; none changed anything.
    stored_ids = {json.loads(c.body)["id"] for c, s in results if c.envelope_ok and s == 200}
    await shop.wait(
        lambda: shop.bot.scalar("SELECT COUNT(*) FROM webhook_events WHERE status='received'") == 0,
        "the inbox went through the stored junk",
        timeout=30,
    )
    assert shop.bot.scalar("SELECT COUNT(*) FROM webhook_events") == events_before + len(stored_ids)
    statuses = Counter(r[0] for r in shop.bot.query("SELECT status FROM webhook_events"))
    assert snapshot(shop) == before
    await shop.bot.wait_healthy(timeout=5)

    # The next genuine event is served and applied.
    await shop.pay(session_id)
    await shop.wait(lambda: shop.has_role(BUYER), "role from the genuine event after the fuzz")
    codes = Counter(s for _, s in results)
    print(
        f"\nwebhook fuzz: {len(results)} requests in {sent_in:.1f}s, statuses {dict(codes)}, "
        f"stored junk events {len(stored_ids)} → {dict(statuses)}"
    )
