"""Prices are parsed into minor units per currency and bad input is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import InvalidInput
from bot.money import format_price, parse_price


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("4.99", "usd", 499),
        ("4", "usd", 400),
        ("500", "jpy", 500),
        ("1.230", "kwd", 1230),
        ("1.23", "kwd", 1230),
    ],
)
def test_parses(text: str, currency: str, amount: int) -> None:
    """Decimal strings become integer minor units, zero-decimal currencies included."""
    assert parse_price(text, currency) == amount


@pytest.mark.parametrize(
    "text", ["abc", "-1", "0", "4.999", "1e3", "nan", "", "1,5", "99999999999"]
)
def test_refuses(text: str) -> None:
    """Non-numbers, non-positive, too precise and absurd amounts are refused clearly."""
    with pytest.raises(InvalidInput):
        parse_price(text, "usd")


def test_zero_decimal_refuses_fraction() -> None:
    """JPY has no minor unit, so 5.5 JPY is refused."""
    with pytest.raises(InvalidInput, match="whole units"):
        parse_price("5.5", "jpy")


def test_three_decimal_refuses_a_last_digit() -> None:
    """Stripe requires three-decimal amounts to end in 0: 1.234 KWD is refused with a hint."""
    with pytest.raises(InvalidInput, match=r"must end in 0.*Try `1\.230`"):
        parse_price("1.234", "kwd")
    with pytest.raises(InvalidInput, match=r"Try `0\.010`"):
        parse_price("0.005", "kwd")


@given(st.integers(min_value=1, max_value=99_999_999), st.sampled_from(["usd", "jpy", "kwd"]))
def test_round_trip(amount: int, currency: str) -> None:
    """format_price output parses back to the same amount (three-decimal ones end in 0)."""
    if currency == "kwd":
        amount = max(10, amount - amount % 10)  # the nearest valid amount
    text = format_price(amount, currency).split()[0].replace(",", "")
    assert parse_price(text, currency) == amount


@given(st.text(max_size=30))
def test_never_crashes(text: str) -> None:
    """Any string either parses to a positive amount or raises InvalidInput."""
    try:
        amount = parse_price(text, "usd")
    except InvalidInput as exc:
        assert exc.user_message
    else:
        assert amount > 0
