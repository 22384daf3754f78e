"""Languages: the message catalogues (bot/locales/<lang>/LC_MESSAGES/shopbot.po), the locale a
text is rendered in, and formatting prices and dates for it.

English is the source: a text is written in English, wrapped in `_()` and looked up in the
current locale's catalogue; a missing translation falls back to the English text. The
current locale is a context variable: `use_locale("de")` around a reply (cogs set it from
`interaction.locale`) or around a DM/notice planned for a guild (`tx.locales.of(guild)`).

The .po files are read at runtime with Babel (no compile step, nothing to build on install).
Command names and descriptions use the same catalogues through discord.py's Translator
(cogs/_i18n.py); names carry the msgctxt `command`, as they obey Discord's name rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date as _babel_date
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.numbers import format_currency

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "shopbot"
SOURCE = "en"
#: Discord locale codes we ship, besides the English source.
TRANSLATED = ("de",)
SUPPORTED = (SOURCE, *TRANSLATED)
#: msgctxt of command, group, option names (lower case, no spaces: Discord's rules)
NAME_CONTEXT = "command"

_current: ContextVar[str] = ContextVar("shopbot_locale", default=SOURCE)


def normalize(locale: str | None) -> str:
    """A Discord locale (`de`, `en-US`, `pt-BR`) → the language we speak for it."""
    if not locale:
        return SOURCE
    code = str(locale).replace("_", "-").lower()
    if code in SUPPORTED:
        return code
    base = code.split("-")[0]
    return base if base in SUPPORTED else SOURCE


def parse_choice(text: str) -> str | None:
    """`/shop settings locale`: the admin's value → a supported language (None: unknown)."""
    code = text.strip().replace("_", "-").lower()
    base = code.split("-")[0]
    return base if base in SUPPORTED else None


def catalogue_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalogue(lang: str) -> Catalog | None:
    """The language's catalogue, read once (None: English, or not shipped)."""
    path = catalogue_path(lang)
    if lang == SOURCE or not path.exists():
        return None
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def lookup(lang: str, msgid: str, context: str | None = None) -> str | None:
    """The translation of `msgid` in `lang`, or None (none there, or English)."""
    found = catalogue(lang)
    if found is None:
        return None
    message = found.get(msgid, context=context)
    if message is None or message.fuzzy or not isinstance(message.string, str):
        return None
    return message.string or None


def current() -> str:
    return _current.get()


@contextmanager
def use_locale(locale: str | None) -> Iterator[str]:
    """Render texts in `locale` (a Discord locale code) inside the block."""
    lang = normalize(locale)
    token = _current.set(lang)
    try:
        yield lang
    finally:
        _current.reset(token)


def set_locale(locale: str | None) -> str:
    """Set the locale for the rest of this task (an interaction's handler)."""
    lang = normalize(locale)
    _current.set(lang)
    return lang


def _(msgid: str, /, **params: object) -> str:
    """`msgid` in the current locale, with `{name}` placeholders filled from `params` (a
    `Text` param is rendered in the same locale)."""
    text = lookup(_current.get(), msgid) or msgid
    if not params:
        return text
    return text.format(**{k: str(v) if isinstance(v, Text) else v for k, v in params.items()})


class Text:
    """A text rendered when it is shown, in the locale current then: what a service says
    to a user it cannot know the language of (errors, results). `str()` renders it.

    `Text(N_("No product called {name}."), name=ref)`: the English msgid (marked with
    `N_()` for the catalogue) and its placeholders' values, which may be `Text`s too."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, /, **params: object) -> None:
        self.msgid = msgid
        self.params = params

    def __str__(self) -> str:
        return _(self.msgid, **self.params)

    def english(self) -> str:
        """The text in the source language (for logs and exception messages)."""
        with use_locale(SOURCE):
            return str(self)

    def __repr__(self) -> str:
        return f"Text({self.english()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        return (self.msgid, self.params) == (other.msgid, other.params)

    def __hash__(self) -> int:
        return hash(self.msgid)


def N_(msgid: str, /) -> str:
    """Mark a text for the catalogue without translating it here (translated when shown)."""
    return msgid


def money(amount: int, currency: str, decimals: int) -> str:
    """Minor units (Stripe's, authoritative) → the current locale's way to write the price
    (`4,99 $` in German); `decimals` is the currency's exponent from bot/money.py."""
    value = Decimal(amount).scaleb(-decimals)
    text = format_currency(value, currency.upper(), locale=Locale.parse(_current.get()))
    return text.replace("\xa0", " ")


def date(when: datetime) -> str:
    """A calendar date as the current locale writes it (`03.12.2026`, `Dec 3, 2026`)."""
    return _babel_date(when, format="medium", locale=Locale.parse(_current.get()))
