"""Bearer tokens for tests: their clear secrets, the SLAWATCH_TOKENS JSON, gRPC metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping

from internal.config.tokens import hash_token

# name -> (tenant, roles)
TOKENS: dict[str, tuple[str, list[str]]] = {
    "acme-all": ("acme", ["ingest", "read", "watch"]),
    "acme-reader": ("acme", ["read"]),
    "acme-watcher": ("acme", ["watch"]),
    "acme-admin": ("acme", ["admin"]),
    "globex-all": ("globex", ["ingest", "read", "watch"]),
}


def secret(name: str) -> str:
    return f"s3cret-{name}-token"


def tokens_json(tokens: Mapping[str, tuple[str, list[str]]] = TOKENS) -> str:
    return json.dumps(
        [
            {"name": name, "sha256": hash_token(secret(name)), "tenant": tenant, "roles": roles}
            for name, (tenant, roles) in tokens.items()
        ]
    )


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret(name)}"),)
