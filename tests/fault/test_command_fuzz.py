"""Generated options for /shop product add|edit, /buy, /claim: clean replies, no half-writes."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.harness import MANAGE_GUILD
from tests.shop import ADMIN, FRIEND, Shop, checkout_url, text_of

EXAMPLES = 1_200  # commands, one after the other (each checked against the database)
FIRST_MEMBER = 720_000_001
MEMBERS = 12  # buyers take turns (3 open checkouts each)
INTERNAL_ERROR = "Something went wrong"
# Inputs people paste on purpose or by accident.
SPECIALS = [
    "",
    " ",
    "\t\n",
    "\u200b",
    "\u3000",
    "'; DROP TABLE products; --",
    '" OR 1=1 --',
    "Robert'); DROP TABLE orders;--",
    "%",
    "_",
    "\\",
    "\x00",
    "@everyone",
    "@here",
    f"<@{ADMIN}>",
    "<@&1>",
    "<#1>",
    "**bold**",
    "`code`",
    "```",
    "||spoiler||",
    "[link](https://evil.example)",
    "https://checkout.stripe.com/c/pay/cs_fake",
    "\u202eRTL override",
    "Z̷̧̛a̴l̶g̷o̸",
    "ﷺ",
    "𒐫" * 20,
    "👨‍👩‍👧‍👦",
    "NaN",
    "Infinity",
    "-0",
    "1e308",
    "٤٫٩٩",
    "٤.٩٩",
    "４.９９",
    "²",
    "¹²³",
    "9" * 20,
    "9" * 40,
    "0x10",
    "1_000",
    " 4.99 ",
    "4,99",
    "+4.99",
    ".5",
    "5.",
    "0.001",
    "0",
    "-1",
    "01",
    "1.0",
]
FIRST_PRODUCT = "\x01first"  # replaced by the id or name of an existing product when sent
FIRST_NAME = "\x01name"
NEWEST_PRODUCT = "\x01newest"


def joined(parts: list[str]) -> str:
    return "".join(parts)


weird_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(SPECIALS),
    st.builds(joined, st.lists(st.sampled_from(SPECIALS) | st.text(max_size=8), max_size=4)),
    st.text(alphabet=" \t\n\r\u00a0\u200b\u2028\u3000", max_size=8),
    st.builds(lambda s, n: s * n, st.sampled_from(SPECIALS[5:]), st.integers(10, 300)),
)
valid_prices = st.from_regex(r"[1-9][0-9]{0,4}(\.[0-9]{1,2})?", fullmatch=True)
prices = st.one_of(
    valid_prices,
    valid_prices,
    st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{0,14})?", fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(str),
    weird_text,
)
currencies = st.one_of(
    st.sampled_from(["usd", "USD", " eur ", "jpy", "kwd", "xyz", "us", "usdd", "ü$d", "1ab"]),
    st.text(max_size=10),
)
product_refs = st.one_of(
    st.sampled_from([FIRST_PRODUCT, FIRST_NAME, NEWEST_PRODUCT]),
    st.just(NEWEST_PRODUCT),
    weird_text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
claim_codes = st.one_of(
    st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8),
    st.text(alphabet="abcdefghjkmnpqrstuvwxyz23456789- ", min_size=6, max_size=12),
    st.sampled_from(["ABCD-EF23", "abcd ef23", "ABCD-EF2", "ABCD-EF234", "OOOO-IIII", "ßßßß-ßßßß"]),
    weird_text,
)
ints = st.integers(min_value=-(2**60), max_value=2**60)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@dataclass(frozen=True)
class Call:
    """One slash command and its raw option values (None = option left out)."""

    command: str
    options: tuple[tuple[str, Any], ...]


def call(command: str, **options: st.SearchStrategy[Any]) -> st.SearchStrategy[Call]:
    return st.fixed_dictionaries(options).map(
        lambda values: Call(command, tuple((k, v) for k, v in values.items() if v is not None))
    )


commands = st.one_of(
    call(  # mostly valid: weird names and descriptions that should be accepted
        "shop product add",
        name=weird_text,
        price=valid_prices,
        currency=optional(st.sampled_from(["usd", "eur", "jpy", "kwd"])),
        role=optional(st.just("vip")),
        description=optional(weird_text),
        stock=optional(st.integers(0, 1_000_000)),
        allow_promotion_codes=optional(st.booleans()),
    ),
    call(
        "shop product edit",
        product=st.sampled_from([FIRST_PRODUCT, FIRST_NAME, NEWEST_PRODUCT]),
        name=optional(weird_text),
        price=optional(valid_prices | prices),
        description=optional(weird_text),
        stock=optional(st.integers(0, 1_000_000)),
        active=optional(st.booleans()),
    ),
    call(
        "shop product add",
        name=weird_text | st.sampled_from(["VIP", "vip", " VIP ", "Gold"]),
        price=prices,
        currency=optional(currencies),
        role=optional(st.sampled_from(["vip", "vip", "high", "everyone", "bot"])),
        kind=optional(st.sampled_from(["one_time", "timed", "subscription"])),
        interval=optional(st.sampled_from(["day", "week", "month", "year"])),
        duration_days=optional(ints),
        trial_days=optional(ints),
        description=optional(weird_text),
        stock=optional(ints),
        allow_promotion_codes=optional(st.booleans()),
    ),
    call(
        "shop product edit",
        product=product_refs,
        name=optional(weird_text | st.sampled_from(["VIP", "Gold"])),
        price=optional(prices),
        description=optional(weird_text),
        stock=optional(ints),
        active=optional(st.booleans()),
    ),
    call(
        "buy",
        product=optional(product_refs),
        gift_to=optional(st.sampled_from(["friend", "self", "bot_user"])),
    ),
    call("claim", code=optional(claim_codes)),
)


def generate_calls() -> list[Call]:
    """Run hypothesis once, deterministically, collecting every generated command."""
    collected: list[Call] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(commands)
    def collect(one: Call) -> None:
        collected.append(one)

    collect()
    return collected


@pytest.fixture(scope="module")
def fuzz_calls() -> list[Call]:
    return generate_calls()


# ------------------------------------------------------------------- sending
def option_specs(shop: Shop, path: str) -> dict[str, dict[str, Any]]:
    """The synced definitions of a command's options (what Discord enforces before sending)."""
    names = path.split()
    node = next(c for c in shop.discord.synced_commands[shop.guild_id] if c["name"] == names[0])
    for name in names[1:]:
        node = next(o for o in node["options"] if o["name"] == name)
    return {o["name"]: o for o in node.get("options") or []}


def as_discord_sends(spec: dict[str, Any], value: Any) -> Any:
    """Clip a value to the option's limits: Discord refuses anything else client-side."""
    if spec["type"] == 3:
        value = str(value)[: spec.get("max_length", 6000)]
        if len(value) < spec.get("min_length", 0):
            value = value.ljust(spec["min_length"], "x")
    elif spec["type"] == 4:
        low = spec.get("min_value", -(2**53))
        high = spec.get("max_value", 2**53)
        value = min(max(int(value), low), high)
    return value


def resolve(shop: Shop, value: Any) -> Any:
    """Placeholders → ids of this run's objects."""
    first = shop.bot.query("SELECT id, name FROM products WHERE archived=0 ORDER BY id LIMIT 1")
    if value == NEWEST_PRODUCT:
        return str(shop.bot.scalar("SELECT MAX(id) FROM products WHERE archived=0"))
    if value == FIRST_PRODUCT:
        return str(first[0]["id"]) if first else "1"
    if value == FIRST_NAME:
        return first[0]["name"] if first else "VIP"
    guild = shop.discord.guilds[shop.guild_id]
    return {
        "vip": shop.vip_role,
        "high": shop.high_role,
        "everyone": shop.guild_id,
        "bot": guild.bot_role_id,
        "friend": FRIEND,
        "bot_user": shop.discord.bot_user_id,
    }.get(value, value)


def shorten(options: dict[str, Any]) -> str:
    return repr(
        {k: v[:60] + "…" if isinstance(v, str) and len(v) > 60 else v for k, v in options.items()}
    )


def state(shop: Shop) -> dict[str, Any]:
    bot = shop.bot
    return {
        "products": [tuple(r) for r in bot.query("SELECT * FROM products ORDER BY id")],
        "actions": bot.scalar("SELECT COUNT(*) FROM actions"),
        "pending_orders": bot.scalar("SELECT COUNT(*) FROM orders WHERE status='pending'"),
        "orders": [
            tuple(r)
            for r in bot.query(
                "SELECT id, status, recipient_id FROM orders WHERE status!='pending'"
            )
        ],
        "entitlements": bot.scalar("SELECT COUNT(*) FROM entitlements"),
    }


def expected_change(command: str, reply: dict[str, Any]) -> set[str]:
    """Which parts of the state this reply says were written."""
    text = text_of(reply)
    if command == "shop product add" and text.startswith("Added"):
        return {"products", "actions"}
    if command == "shop product edit" and text.startswith("Updated"):
        return {"products"}
    if command == "buy" and checkout_url(reply):
        return {"products", "pending_orders"}  # stock is taken
    return set()


async def test_command_fuzz_replies_cleanly_without_partial_writes(
    shop: Shop, fuzz_calls: list[Call]
) -> None:
    """Hundreds of generated option values: ephemeral, no internal error, writes only on success."""
    started = time.monotonic()
    await shop.add_product("VIP", "4.99")
    members = [FIRST_MEMBER + i for i in range(MEMBERS)]
    for user in members:
        shop.discord.add_member(shop.guild_id, user, dispatch=False)
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    for n, one in enumerate(fuzz_calls):
        specs = option_specs(shop, one.command)
        user = members[n % MEMBERS] if one.command in ("buy", "claim") else ADMIN
        options = {}
        for name, raw in one.options:
            value = resolve(shop, raw)
            if raw == "self":
                value = user
            options[name] = as_discord_sends(specs[name], value)
        before = state(shop)
        admin = one.command.startswith("shop")
        inter = await shop.discord.invoke_command(
            shop.guild_id,
            user,
            one.command,
            options,
            permissions=str(MANAGE_GUILD if admin else 0),
        )
        reply = await inter.wait_message()
        text = text_of(reply)
        where = f"/{one.command} {shorten(options)} → {text[:120]!r}"
        after = state(shop)
        changed = {key for key in before if before[key] != after[key]}
        allowed = expected_change(one.command, reply)
        if not inter.is_ephemeral():
            problems.append(f"public reply: {where}")
        if INTERNAL_ERROR in text or "Traceback" in text:
            problems.append(f"internal error: {where}")
        if not changed <= allowed:
            problems.append(f"wrote {changed - allowed} without saying so: {where}")
        if "pending_orders" in allowed and after["pending_orders"] != before["pending_orders"] + 1:
            problems.append(f"link without exactly one new open order: {where}")
        if "actions" in allowed and len(after["products"]) != len(before["products"]) + 1:
            problems.append(f"'Added' without exactly one new product: {where}")
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        outcomes[f"/{one.command}: {first_line[:45]}"] += 1
    print(f"\ncommand fuzz: {len(fuzz_calls)} commands in {time.monotonic() - started:.1f}s")
    for outcome, count in outcomes.most_common(15):
        print(f"  {count:4d}  {outcome}")
    orders = shop.bot.scalar("SELECT COUNT(*) FROM orders")
    print(f"  products {len(state(shop)['products'])}, orders {orders}")
    assert not problems, f"{len(problems)} bad replies:\n" + "\n".join(problems[:15])
