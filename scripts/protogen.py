"""Generate the Python stubs of proto/ into pkg/ (make proto), or check they have not drifted.

The stubs are committed so that a user of `pkg/slawatch` needs no protoc; `--check` regenerates
them into a temporary folder and fails when any file differs from what is committed.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_PACKAGE = Path("slawatch") / "v1"


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # The mypy-protobuf plugins live beside this interpreter, which may not be on PATH.
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / OUT_PACKAGE / "__init__.py").touch()


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / OUT_PACKAGE).glob("*") if p.is_file()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if pkg/ differs from proto/")
    opts = parser.parse_args()
    target = ROOT / "pkg"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        wanted = generated_files(fresh)
        if opts.check:
            have = generated_files(target)
            drift = sorted(str(p) for p in wanted ^ have)
            drift += sorted(
                str(p)
                for p in wanted & have
                if not filecmp.cmp(fresh / p, target / p, shallow=False)
            )
            if drift:
                print("generated code drifted from proto/ (run `make proto`):", *drift, sep="\n  ")
                return 1
            print(f"generated code matches proto/ ({len(wanted)} files)")
            return 0
        for stale in generated_files(target) - wanted:
            (target / stale).unlink()
        for rel in wanted:
            shutil.copyfile(fresh / rel, target / rel)
        print(f"generated {len(wanted)} files into {target / OUT_PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
