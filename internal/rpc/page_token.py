"""Dashboard cursors: the last row's sort key, bound to the filter and the tenant that produced
it, encrypted and authenticated so that a caller can neither read nor forge one.

A token is base64url of: version (1 byte) | nonce (16) | ciphertext | tag (16). The plaintext is
the filter fingerprint, the row's urgent_at (microseconds since the epoch) and its ticket id. The
ciphertext is the plaintext XORed with HMAC-SHA256(encryption key, nonce | counter) blocks (a
stream cipher from a pseudo-random function); the tag is HMAC-SHA256(authentication key, tenant
| version | nonce | ciphertext), truncated. Both keys are derived from one key: the setting
SLAWATCH_PAGE_TOKEN_KEY, or, when unset, a hash of DATABASE_URL, which every server process of a
deployment shares and which survives restarts (a token must work on whichever process answers the
next page). Even a forged token could only move a cursor within the caller's own tenant, and its
contents are validated like any request field before they reach a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from internal.config.settings import SettingsError

KEY_SETTING = "SLAWATCH_PAGE_TOKEN_KEY"
MIN_KEY_CHARS = 16
# A token holds at most a 128-character ticket id (512 bytes of UTF-8) and a few fixed fields.
MAX_TOKEN_CHARS = 1024
_VERSION = b"\x01"
_NONCE, _TAG, _FINGERPRINT = 16, 16, 12
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PageTokenError(ValueError):
    pass


def filter_fingerprint(parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:_FINGERPRINT]


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, b"slawatch page token/" + purpose, hashlib.sha256).digest()


@dataclass(frozen=True)
class PageTokens:
    """Makes and reads the tokens of one deployment (every process with the same key)."""

    key: bytes

    @classmethod
    def from_env(cls, database_url: str, env: Mapping[str, str] | None = None) -> PageTokens:
        env = os.environ if env is None else env
        raw = env.get(KEY_SETTING, "")
        if raw:
            if len(raw) < MIN_KEY_CHARS:
                raise SettingsError(f"{KEY_SETTING}: at least {MIN_KEY_CHARS} characters")
            return cls(raw.encode())
        return cls(hashlib.sha256(b"slawatch page token key\0" + database_url.encode()).digest())

    def _stream(self, nonce: bytes, length: int) -> bytes:
        enc = _derive(self.key, b"encrypt")
        blocks = (length + 31) // 32
        return b"".join(
            hmac.new(enc, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
            for i in range(blocks)
        )[:length]

    def _tag(self, tenant: str, body: bytes) -> bytes:
        mac = _derive(self.key, b"authenticate")
        scope = tenant.encode()
        message = len(scope).to_bytes(4, "big") + scope + body
        return hmac.new(mac, message, hashlib.sha256).digest()[:_TAG]

    def encode(self, tenant: str, urgent_at: datetime, ticket_id: str, fingerprint: str) -> str:
        micros = (urgent_at - _EPOCH) // timedelta(microseconds=1)
        plain = fingerprint.encode() + micros.to_bytes(8, "big", signed=True) + ticket_id.encode()
        nonce = secrets.token_bytes(_NONCE)
        cipher = bytes(a ^ b for a, b in zip(plain, self._stream(nonce, len(plain)), strict=True))
        body = _VERSION + nonce + cipher
        token = body + self._tag(tenant, body)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, token: str, tenant: str, fingerprint: str) -> tuple[datetime, str]:
        """The cursor (urgent_at, ticket_id), or PageTokenError saying what is wrong. The ticket
        id is checked by the caller like any request field."""
        if len(token) > MAX_TOKEN_CHARS:
            raise PageTokenError("malformed page token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise PageTokenError("malformed page token") from None
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
            # Only the canonical spelling: the last character's spare bits are no hiding place.
            raise PageTokenError("malformed page token")
        body, tag = raw[:-_TAG], raw[-_TAG:]
        if len(body) < 1 + _NONCE + _FINGERPRINT + 8 or body[:1] != _VERSION:
            raise PageTokenError("malformed page token")
        if not hmac.compare_digest(tag, self._tag(tenant, body)):
            raise PageTokenError("page token was not issued to this caller, or was altered")
        nonce, cipher = body[1 : 1 + _NONCE], body[1 + _NONCE :]
        plain = bytes(a ^ b for a, b in zip(cipher, self._stream(nonce, len(cipher)), strict=True))
        if plain[:_FINGERPRINT] != fingerprint.encode():
            raise PageTokenError("page token was issued for a different filter")
        micros = int.from_bytes(plain[_FINGERPRINT : _FINGERPRINT + 8], "big", signed=True)
        try:
            urgent_at = _EPOCH + timedelta(microseconds=micros)
            ticket_id = plain[_FINGERPRINT + 8 :].decode()
        except (OverflowError, UnicodeDecodeError):
            raise PageTokenError("malformed page token") from None
        return urgent_at, ticket_id
