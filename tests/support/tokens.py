"""Bearer tokens for tests: their clear secrets, the SLAWATCH_TOKENS JSON, a tokens file, gRPC
metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

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


def save_by_rename(path: Path, text: str) -> None:
    """Save as editors and deploy tools do: a new file renamed over the old one."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    os.replace(staged, path)


def save_tokens_file(path: Path, tokens: Mapping[str, tuple[str, list[str]]]) -> None:
    """`tokens` as a SLAWATCH_TOKENS_FILE (JSON is YAML too), saved by rename."""
    save_by_rename(path, tokens_json(tokens) + "\n")


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret(name)}"),)
