"""Prices: parse decimal strings into integer minor units per currency, and format them."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from bot import i18n
from bot.errors import InvalidInput
from bot.i18n import N_

# Stripe's zero- and three-decimal currencies; every other currency has two decimals.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
MAX_MINOR_UNITS = 99_999_999  # Stripe's limit on amount for a single charge
_PRICE = re.compile(r"-?\d{1,12}(\.\d{1,12})?")


def decimals(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def normalize_currency(text: str) -> str:
    code = text.strip().lower()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidInput(
            N_("`{text}` is not a currency code; use three letters like usd."), text=text[:20]
        )
    return code


def parse_price(text: str, currency: str) -> int:
    """`"4.99", "usd"` → 499; `"500", "jpy"` → 500. Raises InvalidInput with a clear reason."""
    cleaned = text.strip()
    if not _PRICE.fullmatch(cleaned):
        raise InvalidInput(N_("`{text}` is not a price; write it like `4.99`."), text=text[:20])
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput(
            N_("`{text}` is not a price; write it like `4.99`."), text=text[:20]
        ) from None
    if value <= 0:
        raise InvalidInput(N_("The price must be more than zero."))
    places = decimals(currency)
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        if places == 0:
            raise InvalidInput(
                N_("{currency} prices take whole units; `{text}` has more."),
                currency=currency.upper(),
                text=text[:20],
            )
        raise InvalidInput(
            N_("{currency} prices take at most {places} decimal places; `{text}` has more."),
            currency=currency.upper(),
            places=places,
            text=text[:20],
        )
    amount = int(minor)
    if places == 3 and amount % 10:
        # Stripe settles three-decimal currencies in tens of the minor unit.
        nearest = format_price(amount - amount % 10 or 10, currency).split()[0]
        raise InvalidInput(
            N_(
                "{currency} prices must end in 0 (Stripe charges three-decimal currencies in "
                "steps of 0.010); `{text}` does not. Try `{nearest}`."
            ),
            currency=currency.upper(),
            text=text[:20],
            nearest=nearest,
        )
    if amount > MAX_MINOR_UNITS:
        raise InvalidInput(
            N_("That price is too large; the most Stripe accepts is {price}."),
            price=format_price(MAX_MINOR_UNITS, currency),
        )
    return amount


def format_price(amount: int, currency: str) -> str:
    """499, "usd" → `4.99 USD` in English; in another locale as it writes prices (German:
    `4,99 $`). The integer minor units stay what is stored and charged."""
    places = decimals(currency)
    if i18n.current() != i18n.SOURCE:
        return i18n.money(amount, currency, places)
    if places == 0:
        return f"{amount:,} {currency.upper()}"
    whole, frac = divmod(amount, 10**places)
    return f"{whole:,}.{frac:0{places}d} {currency.upper()}"
