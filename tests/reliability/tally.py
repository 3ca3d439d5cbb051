"""What the reliability suite tried and what came of it, gathered across its tests into one table.

Tests add to `TALLY`; `tests/reliability/conftest.py` prints the table at the end of the run and,
with `--reliability-report`, appends it to BENCHMARKS.md (`bench/reliability.py` runs exactly that).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass, field

import numpy as np

# The rows of the table, in order, with what each counts.
ROWS = {
    "inputs_tried": "hostile files, names, requests, tokens and path escapes sent",
    "refused_with_reason": "inputs refused or failed with a stable reason code",
    "server_errors_5xx": "5xx answers to client input (must be 0)",
    "crashes": "server or worker processes that died without being killed (must be 0)",
    "kills_survived": "SIGKILLs of a running `dataflux process` after which every file completed",
    "files_lost": "landed files with no catalog row, or completed without their segments (must be 0)",
    "duplicates": "duplicated asset, segment or vector rows (must be 0)",
    "stuck_files": "files left queued or processing at the end (must be 0)",
}


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROWS, 0))
    latencies_ms: list[float] = field(default_factory=list)
    searches: int = 0
    search_errors: int = 0
    load: str = ""  # what the load test ran (clients, seconds, files)
    notes: list[str] = field(default_factory=list)

    def add(self, row: str, n: int = 1) -> None:
        self.counts[row] += n

    @property
    def used(self) -> bool:
        return any(self.counts.values()) or self.searches > 0

    def table(self) -> str:
        mode = "full" if full_run() else "bounded"
        lines = [
            f"### Reliability suite ({mode} run, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.machine()}, {os.cpu_count()} CPUs)",
            "",
            "| measure | count | what it counts |",
            "|---|---|---|",
            *(f"| {name} | {self.counts[name]} | {ROWS[name]} |" for name in ROWS),
        ]
        if self.searches:
            p50, p99 = (float(np.percentile(self.latencies_ms, q)) for q in (50, 99))
            lines += [
                f"| searches during writes | {self.searches} | {self.load} |",
                f"| search errors during writes | {self.search_errors} | non-2xx or failed requests (must be 0) |",
                f"| search latency p50 / p99 (ms) | {p50:.0f} / {p99:.0f} | under that load, same machine |",
            ]
        lines += [f"\n{note}" for note in self.notes]
        return "\n".join(lines) + "\n"


TALLY = Tally()


# Read once at import: the `dataflux_env` fixture clears DATAFLUX_* variables inside tests.
_FULL = os.environ.get("DATAFLUX_RELIABILITY_FULL", "") == "1"


def full_run() -> bool:
    """The full suite (make test-reliability sets DATAFLUX_RELIABILITY_FULL=1) or the bounded one."""
    return _FULL
