"""Bearer tokens: their configuration, their hashes, and who a presented token is.

Transport-neutral on purpose: the gRPC server (internal/rpc/auth.py) and the WebSocket bridge
(internal/bridge) authenticate callers against the same SLAWATCH_TOKENS / SLAWATCH_TOKENS_FILE,
so a token means the same tenant and roles on both sides.

Tokens are configured as SHA-256 hashes, each bound to one tenant and a set of roles; the clear
token is never stored or logged. The file is read and parsed within the bounds of yaml_load, and
no message shows a value of it: only entry indexes and field names.

SLAWATCH_TOKENS_FILE is watched (internal/config/tokens_watcher.py): `Authenticator.replace`
swaps the whole set, and its listeners end what a removed or changed token no longer allows.
Whether a process runs in the insecure development mode is decided once, at start: emptying the
file of a process started with tokens refuses every call, it never opens the process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from internal.config.yaml_load import MAX_FILE_BYTES, YamlLoadError, load_yaml, read_bounded

log = logging.getLogger(__name__)

DEV_TENANT = "default"


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    WATCH = "watch"
    ADMIN = "admin"  # erasure (DeleteTicket) and policy previews (PreviewPolicy)
    ACK = "ack"  # AcknowledgeAlert


class AuthConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str  # the token's label, safe to log
    tenant: str
    roles: frozenset[Role]
    # Which configured token this is (its SHA-256), so that a reload can tell what became of the
    # token of an open stream; "" for the development principal. Not shown, not compared.
    token_hash: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class TokenChange:
    """What a reload changed, by token hash: the principals before and after."""

    removed: Mapping[str, Principal]
    added: Mapping[str, Principal]
    changed: Mapping[str, tuple[Principal, Principal]]  # tenant or roles (or name) differ

    def __bool__(self) -> bool:
        return bool(self.removed or self.added or self.changed)

    def summary(self) -> str:
        """For the log: token names only, never hashes."""

        def names(principals: Iterable[Principal]) -> str:
            return ", ".join(sorted(p.name for p in principals)) or "none"

        return (
            f"added: {names(self.added.values())}; removed: {names(self.removed.values())};"
            f" changed: {names(new for _, new in self.changed.values())}"
        )


TokenListener = Callable[[TokenChange], object]


def diff_tokens(old: Mapping[str, Principal], new: Mapping[str, Principal]) -> TokenChange:
    def same(a: Principal, b: Principal) -> bool:
        return (a.name, a.tenant, a.roles) == (b.name, b.tenant, b.roles)

    return TokenChange(
        removed={h: p for h, p in old.items() if h not in new},
        added={h: p for h, p in new.items() if h not in old},
        changed={h: (old[h], p) for h, p in new.items() if h in old and not same(old[h], p)},
    )


DEV_PRINCIPAL = Principal("insecure-dev", DEV_TENANT, frozenset(Role))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


@dataclass
class TokenBucket:
    """`rate` requests per second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next request would be taken (0 when it would be now)."""
        return max(0.0, (1 - self.tokens) / self.rate)


def _stamped(tokens: Mapping[str, Principal]) -> dict[str, Principal]:
    """Each principal knows its token's hash, however it was made."""
    return {h: p if p.token_hash == h else replace(p, token_hash=h) for h, p in tokens.items()}


class Authenticator:
    def __init__(
        self,
        tokens: Mapping[str, Principal],
        *,
        insecure_dev: bool = False,
        rate_per_second: float = 0.0,
        burst: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # sha256 hex -> principal; replaced whole, never changed in place, so that a lookup
        # reads one consistent set without a lock.
        self._tokens = _stamped(tokens)
        self.insecure_dev = insecure_dev
        self._open_dev = insecure_dev and not self._tokens
        self._listeners: list[TokenListener] = []
        self._rate = rate_per_second
        self._burst = burst or max(rate_per_second, 1.0)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    @property
    def open_dev(self) -> bool:
        """No tokens at start and the insecure switch: every caller is DEV_PRINCIPAL. Fixed at
        start, whatever a reload brings."""
        return self._open_dev

    def __len__(self) -> int:
        return len(self._tokens)

    def on_change(self, listener: TokenListener) -> None:
        """Call `listener` (on the reloading thread) after each `replace` that changed something."""
        with self._lock:
            self._listeners.append(listener)

    def replace(self, tokens: Mapping[str, Principal]) -> TokenChange:
        """Put `tokens` in force for every call from now on; the listeners hear what changed.
        An empty change (the same set) does nothing."""
        with self._lock:
            change = diff_tokens(self._tokens, tokens)
            if not change:
                return change
            self._tokens = _stamped(tokens)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(change)
        return change

    def by_hash(self, token_hash: str) -> Principal | None:
        """The principal configured now for a token hash (of a principal authenticated before)."""
        return self._tokens.get(token_hash) if token_hash else None

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization` header value (`Bearer <token>`)."""
        token = bearer_token(authorization)
        return None if token is None else self.lookup(token)

    def lookup(self, token: str) -> Principal | None:
        """The principal of a clear token; None when it is not configured."""
        if not token:
            return None
        digest = hash_token(token)
        for known, principal in self._tokens.items():  # one set: a reload swaps the reference
            # Constant-time comparison: the hash must not leak through timing.
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def allow(self, principal: Principal) -> bool:
        """The per-token request rate; always True when no rate is configured."""
        return self.admit(principal) == 0.0

    def admit(self, principal: Principal) -> float:
        """Take one request of the per-token rate: 0.0 when admitted, else the seconds until
        the token could be admitted (what a refused client should wait)."""
        if self._rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.setdefault(principal.name, TokenBucket(self._rate, self._burst))
            if bucket.take(self._clock()):
                return 0.0
            # Never 0.0 for a refusal, which would read as admitted.
            return max(bucket.wait(), 1e-3)


def parse_tokens(raw: Any, source: str) -> dict[str, Principal]:
    """`[{name, sha256, tenant, roles}]`; errors name the entry and field."""
    if not isinstance(raw, list):
        raise AuthConfigError(f"{source}: expected a list of tokens")
    tokens: dict[str, Principal] = {}
    names: set[str] = set()
    entries: dict[str, int] = {}  # token hash -> its entry's index
    for i, entry in enumerate(raw):
        key = f"{source}[{i}]"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{key}: expected a mapping")
        name, digest, tenant, roles = (entry.get(k) for k in ("name", "sha256", "tenant", "roles"))
        if not isinstance(name, str) or not name or name in names:
            raise AuthConfigError(f"{key}.name: a unique, non-empty label is required")
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise AuthConfigError(f"{key}.sha256: expected 64 lowercase hex characters")
        if digest in entries:
            # One token, two entries: which tenant and roles would it have?
            raise AuthConfigError(
                f"{key}.sha256: the same token as {source}[{entries[digest]}]; one entry a token"
            )
        if not isinstance(tenant, str) or not tenant or len(tenant) > 64:
            raise AuthConfigError(f"{key}.tenant: expected a tenant name of 1-64 characters")
        if not isinstance(roles, list) or not roles:
            raise AuthConfigError(f"{key}.roles: expected a non-empty list")
        try:
            parsed = frozenset(Role(r) for r in roles)
        except ValueError:
            raise AuthConfigError(
                f"{key}.roles: unknown role (known: {', '.join(r.value for r in Role)})"
            ) from None
        names.add(name)
        entries[digest] = i
        tokens[digest] = Principal(name, tenant, parsed, token_hash=digest)
    return tokens


def parse_tokens_file(data: bytes, source: str) -> dict[str, Principal]:
    """The tokens of a tokens file's bytes (YAML or JSON); AuthConfigError naming the entry."""
    try:
        raw = load_yaml(data)
    except YamlLoadError as err:
        raise AuthConfigError(f"{source}: refused: {err}") from None
    return parse_tokens(raw, source)


def inline_tokens(inline: str | None) -> dict[str, Principal]:
    """The tokens of SLAWATCH_TOKENS (JSON); none when it is unset."""
    if not inline:
        return {}
    if len(inline) > MAX_FILE_BYTES:
        raise AuthConfigError(f"SLAWATCH_TOKENS: longer than {MAX_FILE_BYTES} characters")
    try:
        raw_inline = json.loads(inline)
    except json.JSONDecodeError as err:
        # err.msg is the parser's own words; str(err) would not show more of the value.
        raise AuthConfigError(
            f"SLAWATCH_TOKENS: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except RecursionError:
        raise AuthConfigError("SLAWATCH_TOKENS: not valid JSON: nested too deeply") from None
    return parse_tokens(raw_inline, "SLAWATCH_TOKENS")


def load_tokens(inline: str | None, path: Path | None) -> dict[str, Principal]:
    """Tokens from SLAWATCH_TOKENS (JSON) and/or SLAWATCH_TOKENS_FILE (YAML or JSON); an entry of
    the file replaces an inline one of the same token."""
    tokens = inline_tokens(inline)
    if path is not None:
        try:
            data = read_bounded(path)
        except OSError as err:
            raise AuthConfigError(f"{path}: cannot read: {err.strerror}") from None
        except YamlLoadError as err:
            raise AuthConfigError(f"{path}: refused: {err}") from None
        tokens.update(parse_tokens_file(data, str(path)))
    return tokens


def build_authenticator(
    inline: str | None,
    path: Path | None,
    *,
    insecure_dev: bool,
    rate_per_second: float = 0.0,
    burst: float = 0.0,
) -> Authenticator:
    """The configured tokens, or (only with the explicit switch) the open development mode.

    Secure by default: no tokens and no SLAWATCH_INSECURE_DEV is an AuthConfigError, so that a
    forgotten variable never serves tenant data unauthenticated.
    """
    tokens = load_tokens(inline, path)
    if not tokens and not insecure_dev:
        raise AuthConfigError(
            "no tokens configured (SLAWATCH_TOKENS or SLAWATCH_TOKENS_FILE); refusing to serve"
            " unauthenticated. For local development only, set SLAWATCH_INSECURE_DEV=1."
        )
    if not tokens:
        log.warning("SLAWATCH_INSECURE_DEV: every caller is tenant %r with every role", DEV_TENANT)
    return Authenticator(
        tokens, insecure_dev=insecure_dev, rate_per_second=rate_per_second, burst=burst
    )
