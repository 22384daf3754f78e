"""Logging setup: plain or JSON lines, with secrets scrubbed from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import Iterable

#: Secrets seen at run time (web buyers' OAuth tokens), scrubbed like the configured ones.
#: Process-wide, as logging is; bounded, as a token is only secret while it is valid.
_SEEN: deque[str] = deque(maxlen=1_000)


def redact(secret: str) -> None:
    """Scrub `secret` from every log line from now on (an OAuth token, as it arrives)."""
    if len(secret) >= 6:
        _SEEN.append(secret)


class RedactSecrets(logging.Filter):
    """Replace any configured secret that slips into a log line with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        known = [*self._secrets, *_SEEN]
        if any(secret in message for secret in known):
            for secret in known:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and scrubs secrets from the whole line, tracebacks included (an
    exception's text, e.g. a URL with a key in it, never went through the message)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = [s for s in secrets if len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        for secret in [*self._secrets, *_SEEN]:
            text = text.replace(secret, "***")
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class DropVoiceWarnings(logging.Filter):
    """shopbot never joins voice: discord.py's missing-voice-library warnings are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def setup_logging(level: str, as_json: bool, secrets: Iterable[str]) -> None:
    secrets = list(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(DropVoiceWarnings())
    plain = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(JsonFormatter() if as_json else plain, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.INFO))
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # The SDK logs every request at INFO ("message='Request to Stripe api'"): shown only
    # when debugging.
    debugging = logging.getLevelName(level) <= logging.DEBUG
    logging.getLogger("stripe").setLevel(logging.DEBUG if debugging else logging.WARNING)
