"""`make bench`: run every benchmark in turn and print its figures.

`make bench BENCH_ARGS="ingest"` runs one of them.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["ingest", "evaluation", "realtime", "delivery", "report"]


def main() -> int:
    wanted = sys.argv[1:] or BENCHMARKS
    failed = 0
    for name in wanted:
        print(f"== {name} ==", flush=True)
        failed |= subprocess.call([sys.executable, "-m", f"bench.{name}"])
    return failed


if __name__ == "__main__":
    sys.exit(main())
