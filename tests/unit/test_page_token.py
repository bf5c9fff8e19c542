"""Page tokens: opaque, authenticated, bound to tenant and filter, keyed per deployment."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from internal.config.settings import SettingsError
from internal.rpc.page_token import KEY_SETTING, PageTokenError, PageTokens

URL = "postgresql://slawatch@db/slawatch"
AT = datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=UTC)
TOKENS = PageTokens.from_env(URL, env={})


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_a_token_reads_back_and_reveals_nothing() -> None:
    token = TOKENS.encode("acme", AT, "TICKET-Ünïcode-42", "abcdef012345")
    assert TOKENS.decode(token, "acme", "abcdef012345") == (AT, "TICKET-Ünïcode-42")
    assert b"TICKET" not in raw(token) and "Ünïcode".encode() not in raw(token)
    # A fresh nonce each time: the same cursor twice gives two different tokens.
    assert token != TOKENS.encode("acme", AT, "TICKET-Ünïcode-42", "abcdef012345")


def test_every_altered_byte_is_refused() -> None:
    token = raw(TOKENS.encode("acme", AT, "T-1", "abcdef012345"))
    for i in range(len(token)):
        altered = token[:i] + bytes([token[i] ^ 1]) + token[i + 1 :]
        text = base64.urlsafe_b64encode(altered).decode().rstrip("=")
        with pytest.raises(PageTokenError):
            TOKENS.decode(text, "acme", "abcdef012345")


def test_bound_to_tenant_filter_and_key() -> None:
    token = TOKENS.encode("acme", AT, "T-1", "abcdef012345")
    with pytest.raises(PageTokenError, match="not issued to this caller"):
        TOKENS.decode(token, "globex", "abcdef012345")
    with pytest.raises(PageTokenError, match="different filter"):
        TOKENS.decode(token, "acme", "000000000000")
    other = PageTokens.from_env(URL, env={KEY_SETTING: "another-deployment-key"})
    with pytest.raises(PageTokenError, match="not issued to this caller"):
        other.decode(token, "acme", "abcdef012345")
    # The default key is the same for every process on the same database.
    assert PageTokens.from_env(URL, env={}).decode(token, "acme", "abcdef012345")[1] == "T-1"


@pytest.mark.parametrize("token", ["", "!!!", "A" * 2000, "AQ", "eyJ1IjogMX0"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(PageTokenError):
        TOKENS.decode(token, "acme", "abcdef012345")


def test_a_short_key_is_a_settings_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=KEY_SETTING):
        PageTokens.from_env(URL, env={KEY_SETTING: "short"})
