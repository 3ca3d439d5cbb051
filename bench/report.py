"""Where every benchmark's table goes: appended to BENCHMARKS.md at the repository root."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def append_section(text: str) -> None:
    """Append one dated section (the file is a log: later sections supersede earlier ones)."""
    if not BENCHMARKS.exists():
        BENCHMARKS.write_text("# DataFlux benchmarks\n")
    with BENCHMARKS.open("a") as out:
        out.write(text if text.startswith("\n") else "\n" + text)
