"""Opaque dashboard cursors: the last row's sort key, bound to the filter that produced it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime


class PageTokenError(ValueError):
    pass


def filter_fingerprint(parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def encode(urgent_at: datetime, ticket_id: str, fingerprint: str) -> str:
    raw = json.dumps({"u": urgent_at.isoformat(), "t": ticket_id, "f": fingerprint})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, fingerprint: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        urgent_at = datetime.fromisoformat(data["u"])
        ticket_id = data["t"]
        token_filter = data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise PageTokenError("malformed page token") from None
    if urgent_at.tzinfo is None or not isinstance(ticket_id, str):
        raise PageTokenError("malformed page token")
    if token_filter != fingerprint:
        raise PageTokenError("page token was issued for a different filter")
    return urgent_at, ticket_id
