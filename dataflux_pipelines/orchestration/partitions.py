"""One Dagster partition per media file, keyed by the content-derived asset id, and run tags over them."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

MEDIA_PARTITIONS = "media_files"

media_files = dg.DynamicPartitionsDefinition(name=MEDIA_PARTITIONS)

# Tags of a run that carries a range of partitions (many files in one run).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def contiguous_ranges(keys: Sequence[str], order: Sequence[str]) -> list[tuple[str, str]]:
    """Split a set of partition keys into ranges of Dagster's partition order that hold only them."""
    wanted = set(keys)
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    prev: str | None = None
    for key in order:
        if key in wanted:
            if start is None:
                start = key
            prev = key
        elif start is not None and prev is not None:
            ranges.append((start, prev))
            start = None
    if start is not None and prev is not None:
        ranges.append((start, prev))
    return ranges


def partition_tag_sets(keys: Sequence[str], order: Sequence[str]) -> list[dict[str, str]]:
    """Run tags that cover exactly `keys`: one partition tag, or one range per contiguous stretch."""
    out = []
    for start, end in contiguous_ranges(keys, order):
        if start == end:
            out.append({"dagster/partition": start})
        else:
            out.append({RANGE_START: start, RANGE_END: end})
    return out


def priority_tags(priority: int) -> dict[str, str]:
    # Dagster runs higher numbers first; DataFlux priority 1 is the most urgent.
    return {"dagster/priority": str(10 - priority), "dataflux/priority": str(priority)}
