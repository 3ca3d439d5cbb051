"""One Dagster partition per media file, and run tags over them.

A partition key is the file's name and its content-derived asset id, `sunset_over_sea.jpg~<uuid>`: the
Dagster UI's partition filter finds a file by its name, and the id after the last `~` keeps the
content-hash identity (keys of installs from before names were added are the bare id, and still work).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import dagster as dg

MEDIA_PARTITIONS = "media_files"

media_files = dg.DynamicPartitionsDefinition(name=MEDIA_PARTITIONS)

# Tags of a run that carries a range of partitions (many files in one run).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


SEPARATOR = "~"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME = 80


def partition_key(asset_id: str, filename: str | None) -> str:
    """`name~asset_id`; characters Dagster's keys or the UI's filter trip on are replaced."""
    name = _UNSAFE.sub("_", filename or "").replace("...", "_").strip(" ._")[:MAX_NAME]
    return f"{name}{SEPARATOR}{asset_id}" if name else asset_id


def asset_id_of(key: str) -> str:
    return key.rsplit(SEPARATOR, 1)[-1]


def keys_by_asset(keys: Iterable[str]) -> dict[str, str]:
    """Asset id -> partition key, for partitions that exist."""
    return {asset_id_of(key): key for key in keys}


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
