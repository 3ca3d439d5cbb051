"""Run the reliability suite and append its table to BENCHMARKS.md.

    python bench/reliability.py          # the bounded suite (what `make test` runs)
    python bench/reliability.py --full   # the full one (20 random kills, 20 clients x 60 s over 100 files)

The table counts inputs tried, refusals with a reason, 5xx, crashes, kills survived, files lost,
duplicates and stuck files, plus search errors and p50/p99 latency during writes (same machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full suite (make test-reliability)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.full:
        env["DATAFLUX_RELIABILITY_FULL"] = "1"
        env.setdefault("DATAFLUX_FUZZ_EXAMPLES", "200")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "reliability",
        "--reliability-report",
        "tests/reliability",
    ]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
