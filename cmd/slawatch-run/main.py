"""slawatch-run: start the whole stack locally (what `make run` calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from internal.embedded.stack import run
from internal.obs.logs import configure_logging

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    configure_logging("INFO", "run")
    return run(ROOT)


if __name__ == "__main__":
    sys.exit(main())
