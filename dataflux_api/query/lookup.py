"""In-memory lookups of one table version, built off the request path: row ids by segment id, asset rows.

Every search and `/similar` answer reads rows by id: the page's 20 asset rows, and for a vision vector's
hits the segment rows they name (a vector whose segment row is gone is no result). As a LanceDB query
each such read is a fixed ~2.5-4 ms however few rows it returns (a BTree lookup through the query
planner), the largest cost the engine adds to the raw queries at 100,000 and 1,000,000 segments. A
table version never changes, so what such a read returns can be held for the version and answered in
microseconds: sorted segment ids with their row ids (44 bytes a segment: 44 MB at 1,000,000), and the
assets' display columns as Arrow with a position per id.

An index is built on a background thread the first time a request sees a version, and used only by
requests pinned at exactly that version: until it is ready (and for a version it is not built for) the
engine reads through LanceDB as before, with the same answer. A library that is being written gets a
new version every commit, so a build starts at most once per `min_interval_s` or ten times the last
build's duration, whichever is longer: at most ~10 % of one core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

T = TypeVar("T")

UUID_CHARS = 36
# Above these sizes a table is read through LanceDB per request instead of being held in memory.
SEGMENT_LOCATOR_MAX_ROWS = 5_000_000  # 220 MB of ids and row ids
ASSET_TABLE_MAX_ROWS = 500_000  # the display columns of half a million files: ~60 MB of Arrow


class VersionedIndex(Generic[T]):
    """One in-memory index of a table at the version requests are pinned at, built on its own thread."""

    def __init__(self, name: str, build: Callable[[Any], T | None], min_interval_s: float = 5.0) -> None:
        self.name = name
        self._build = build
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._ready: tuple[int, T | None] | None = None
        self._building: tuple[int, Future[None]] | None = None
        self._last_start = -float("inf")
        self._last_duration = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dataflux-{name}-index")
        self.builds = 0

    def get(self, table: Any, version: int) -> T | None:
        """The index of this version when it is built; None otherwise (a build may start)."""
        ready = self._ready
        if ready is not None and ready[0] == version:
            return ready[1]
        self._start(table, version, force=False)
        return None

    def wait(self, table: Any, version: int) -> T | None:
        """Build this version's index now if it is not built or building, and wait for it."""
        ready = self._ready
        if ready is not None and ready[0] == version:
            return ready[1]
        while True:
            other = self._building
            if other is not None and other[0] != version:
                other[1].result()  # another version's build first: one build at a time
                continue
            future = self._start(table, version, force=True)
            if future is not None:
                future.result()
            break
        ready = self._ready
        return ready[1] if ready is not None and ready[0] == version else None

    def _start(self, table: Any, version: int, *, force: bool) -> Future[None] | None:
        with self._lock:
            if self._building is not None:
                building_version, future = self._building
                return future if building_version == version else None
            now = time.monotonic()
            wait = max(self.min_interval_s, 10 * self._last_duration)
            if not force and now - self._last_start < wait:
                return None
            self._last_start = now
            future = self._executor.submit(self._run, table, version)
            self._building = (version, future)
            return future

    def _run(self, table: Any, version: int) -> None:
        started = time.perf_counter()
        try:
            built = self._build(table)
        except Exception:  # a failed build leaves requests on the LanceDB path
            log.exception("building the in-memory %s index of version %s failed", self.name, version)
            built = None
        with self._lock:
            self._last_duration = time.perf_counter() - started
            self._ready = (version, built)
            self._building = None
            self.builds += 1


def _fixed_width_ids(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column of UUID strings as a numpy array of 36-byte strings, without a Python loop when it can."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count == 0 and len(array) and pa.types.is_string(array.type):
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[
            array.offset : array.offset + len(array) + 1
        ]
        if np.array_equal(np.diff(offsets), np.full(len(array), UUID_CHARS, dtype=np.int32)):
            data = array.buffers()[2]
            start = int(offsets[0])
            return np.frombuffer(data, dtype=f"S{UUID_CHARS}", count=len(array), offset=start)
    return np.array([value or "" for value in column.to_pylist()], dtype=f"S{UUID_CHARS}")


class SegmentLocator:
    """Row id of every segment in one version of the segments table, by segment id."""

    def __init__(self, ids: np.ndarray, row_ids: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._row_ids = row_ids[order]

    @classmethod
    def build(cls, segments: Any) -> SegmentLocator | None:
        if segments.count_rows() > SEGMENT_LOCATOR_MAX_ROWS:
            return None
        table = segments.search().select(["id"]).with_row_id(True).limit(None).to_arrow()
        ids = _fixed_width_ids(table.column("id"))
        row_ids = table.column("_rowid").to_numpy().astype(np.uint64, copy=False)
        return cls(ids, row_ids)

    def __len__(self) -> int:
        return len(self._ids)

    def row_ids(self, segment_ids: Sequence[str]) -> dict[str, int]:
        """Row ids of the ids that name a segment row in this version (the others are left out)."""
        if not segment_ids or not len(self._ids):
            return {}
        wanted = np.array(
            [s.encode() if len(s) == UUID_CHARS else b"" for s in segment_ids], dtype=f"S{UUID_CHARS}"
        )
        at = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
        found = self._ids[at] == wanted
        return {sid: int(self._row_ids[at[i]]) for i, sid in enumerate(segment_ids) if found[i] and wanted[i]}


class AssetTable:
    """The assets' display columns in one version of the assets table, by asset id."""

    def __init__(self, table: pa.Table) -> None:
        # One chunk: LanceDB hands a full read over in ~1,000-row batches, and a take across a hundred
        # chunks cost 1.4 ms for a page's 20 rows at 100,000 assets, against 0.03 ms from one.
        self._table = table.combine_chunks()
        self._at = {asset_id: i for i, asset_id in enumerate(table.column("id").to_pylist())}

    @classmethod
    def builder(cls, columns: Sequence[str]) -> Callable[[Any], AssetTable | None]:
        def build(assets: Any) -> AssetTable | None:
            if assets.count_rows() > ASSET_TABLE_MAX_ROWS:
                return None
            return cls(assets.search().select(list(columns)).limit(None).to_arrow())

        return build

    def __len__(self) -> int:
        return len(self._at)

    def rows(self, asset_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of the ids that name an asset in this version, as LanceDB's `to_list` gives them."""
        positions = [self._at[a] for a in dict.fromkeys(asset_ids) if a in self._at]
        if not positions:
            return {}
        rows = self._table.take(pa.array(positions, pa.int64())).to_pylist()
        return {row["id"]: row for row in rows}
