"""`make bench`: run every benchmark in turn and print its figures.

`make bench BENCH_ARGS="ingest"` runs one of them. `scale` (ten million tickets, ten minutes or
more and 12 GiB of disk) runs only when named: `make bench BENCH_ARGS=scale`.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["ingest", "evaluation", "realtime", "delivery", "report", "policy"]
OPT_IN = ["scale"]  # too long for every `make bench`


def main() -> int:
    wanted = sys.argv[1:] or BENCHMARKS
    unknown = [name for name in wanted if name not in BENCHMARKS + OPT_IN]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS + OPT_IN}", file=sys.stderr)
        return 2
    failed = 0
    for name in wanted:
        print(f"== {name} ==", flush=True)
        failed |= subprocess.call([sys.executable, "-m", f"bench.{name}"])
    return failed


if __name__ == "__main__":
    sys.exit(main())
