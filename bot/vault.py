"""Vault: the web shop's keys — session cookies and join tokens at rest — from one secret.

The secret is `http.session_secret`, or one generated at the first start and kept in the
`meta` table. Two keys are derived from it with HKDF (one per purpose), so a session cookie
can never be replayed as a stored token or the other way round. Encryption is Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`): nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.log import redact
from bot.store import Store

SECRET_KEY = "http_session_secret"  # noqa: S105 - the meta key, not a secret


class SealedTokenInvalid(Exception):
    """A stored token cannot be opened (the session secret changed since it was sealed)."""


def _derive(secret: str, purpose: bytes) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"shopbot", info=purpose).derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(raw))


class Vault:
    """The keys of one secret."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 characters")
        self.cookie_key = _derive(secret, b"shopbot web session cookie")
        self._tokens = _derive(secret, b"shopbot join token")

    def seal(self, token: str) -> str:
        """Encrypt a Discord access token for the database."""
        return self._tokens.encrypt(token.encode("utf-8")).decode("ascii")

    def open(self, ciphertext: str) -> str:
        """Decrypt what `seal` made; SealedTokenInvalid when it was made with another key."""
        try:
            token = self._tokens.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SealedTokenInvalid("the join token was sealed with another secret") from None
        redact(token)  # e.g. after a restart: never in a log line
        return token


async def load_vault(store: Store, configured: str) -> Vault:
    """The configured secret's vault; else the one of a secret generated once and kept."""
    if configured:
        return Vault(configured)
    async with store.reading() as tx:
        kept = await tx.get_meta(SECRET_KEY)
    if kept is None:
        async with store.transaction() as tx:
            kept = await tx.get_meta(SECRET_KEY)  # another process may have won the race
            if kept is None:
                kept = secrets.token_urlsafe(48)
                await tx.set_meta(SECRET_KEY, kept)
    return Vault(kept)
