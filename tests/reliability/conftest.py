"""The reliability suite's table: printed after the run, appended to BENCHMARKS.md on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from tally import TALLY

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not TALLY.used:
        return
    table = TALLY.table()
    terminalreporter.write_sep("=", "reliability suite")
    terminalreporter.write(table + "\n")
    if config.getoption("--reliability-report", default=False):
        with BENCHMARKS.open("a") as out:
            out.write("\n" + table)
        terminalreporter.write_line(f"appended to {BENCHMARKS}")
