"""The API layer reaches the store only through the use cases (internal/usecase): the servicers,
the alert stream and hub, the converters and the validation import nothing from internal/store.
The server's start-up is the one exception: it makes the pool and applies the migrations."""

from __future__ import annotations

import ast
from pathlib import Path

RPC = Path(__file__).resolve().parents[2] / "internal" / "rpc"
WIRING = {"server.py"}


def store_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [n for n in names if n == "internal.store" or n.startswith("internal.store.")]
    return found


def test_rpc_modules_import_no_store_module_but_the_servers_wiring() -> None:
    """A store type or repository imported into internal/rpc (other than server.py) fails here."""
    modules = sorted(RPC.glob("*.py"))
    assert len(modules) > 5  # the package was found
    offending = {
        p.name: store_imports(p) for p in modules if p.name not in WIRING and store_imports(p)
    }
    assert offending == {}
    assert store_imports(RPC / "server.py")  # the exception is still needed, or can go
