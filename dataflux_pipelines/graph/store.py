"""Published Kuzu snapshots: one writer builds a new version beside the live one and swaps a pointer;
readers open the published version read-only and follow the pointer (Kuzu 0.11 locks a database file
per process: a read-write holder and a reader in another process fail with "Could not set lock").

With an S3 object store the writer also uploads each snapshot (`dataflux_pipelines.published`), and
readers on other machines follow the object store's pointer through a local cache laid out like
`graph_dir` (`snapshots/` + `current`), so the same reopen logic serves both.

State that crosses machines lives in the object store for local and S3 installs alike: tombstones of
deleted assets (`control/tombstones/{asset_id}.json`, written by the API, read by readers and the
publisher) and per-file contributions (`graph/contrib/{asset_id}.parquet`, written by run workers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kuzu
from botocore.exceptions import BotoCoreError, ClientError

from dataflux_pipelines import layout
from dataflux_pipelines.graph.schema import NODE_TYPES, REL_PAIRS, REL_TYPES
from dataflux_pipelines.identity import is_uuid
from dataflux_pipelines.objectstore import ObjectInfo, ObjectMissing, ObjectStore, open_object_store
from dataflux_pipelines.published import (
    GRAPH,
    PublishedError,
    SnapshotFollower,
    cache_dir,
    is_remote,
    set_current,
)

SNAPSHOTS = "snapshots"
POINTER = "current"
TOMBSTONES = "tombstones"
CONTRIB = "contrib"
TOMBSTONE_PREFIX = layout.TOMBSTONE_PREFIX
CONTRIB_PREFIX = layout.CONTRIB_PREFIX
_SNAPSHOT_RE = re.compile(r"^v(\d{6,})\.kuzu$")
# A reader's buffer pool; Kuzu's default (most of RAM) per process would starve the API host.
READER_BUFFER_POOL = 128 * 1024**2
WRITER_BUFFER_POOL = 512 * 1024**2
MAX_DEPTH = 3
MAX_EDGES_PER_HOP = 500
# Concept names and UUIDs; quotes, braces, backslashes and newlines never get this far.
_ENTITY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:\-]{0,127}$")

log = logging.getLogger(__name__)


class GraphError(ValueError):
    """A graph request that cannot be answered; `code` is stable, `field` names the bad argument."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        self.code = code
        self.field = field
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Snapshot:
    version: int
    path: Path


def snapshot_version(path: Path | str) -> int:
    match = _SNAPSHOT_RE.match(Path(path).name)
    if not match:
        raise GraphError("graph_unavailable", f"{path} is not a graph snapshot file")
    return int(match.group(1))


def live_snapshot(graph_dir: Path) -> Snapshot | None:
    """The published snapshot, or None before the first publication."""
    pointer = graph_dir / POINTER
    try:
        target = os.readlink(pointer)
    except FileNotFoundError:
        return None
    path = (graph_dir / target).resolve()
    return Snapshot(snapshot_version(path), path)


def list_snapshots(graph_dir: Path) -> list[Snapshot]:
    folder = graph_dir / SNAPSHOTS
    if not folder.is_dir():
        return []
    out = []
    for entry in folder.iterdir():
        match = _SNAPSHOT_RE.match(entry.name)
        if match and entry.is_file():
            out.append(Snapshot(int(match.group(1)), entry))
    return sorted(out, key=lambda s: s.version)


def publish_snapshot(
    graph_dir: Path,
    mutate: Callable[[kuzu.Connection], None],
    *,
    copy_live: bool = False,
    keep: int = 3,
    grace_s: float = 600.0,
    min_version: int = 1,
) -> Snapshot:
    """Write a new snapshot (empty, or a copy of the live one) with `mutate`, then publish it atomically.

    Only one process may call this at a time (Dagster pool `kuzu_writer` of size 1). `min_version`
    keeps local numbers above those already published to an object store.
    """
    folder = graph_dir / SNAPSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    live = live_snapshot(graph_dir)
    existing = list_snapshots(graph_dir)
    version = max([s.version for s in existing] + [live.version if live else 0, min_version - 1]) + 1
    final = folder / f"v{version:06d}.kuzu"
    # The name does not match the snapshot pattern, so neither GC nor readers pick it up half-built.
    building = folder / f"v{version:06d}.building"
    for leftover in folder.glob(f"v{version:06d}.building*"):
        leftover.unlink()
    if copy_live and live is not None:
        shutil.copyfile(live.path, building)
    try:
        db = kuzu.Database(str(building), buffer_pool_size=WRITER_BUFFER_POOL)
        conn = kuzu.Connection(db)
        try:
            mutate(conn)
        finally:
            conn.close()
            db.close()  # checkpoints: the single file is complete, no .wal remains
        os.replace(building, final)
    except BaseException:
        for leftover in folder.glob(f"v{version:06d}.building*"):
            leftover.unlink()
        raise
    set_current(graph_dir, final)
    if live is not None:
        # The superseded file's mtime becomes the moment it was superseded: the grace period runs
        # from then (a snapshot built an hour ago and replaced a second ago is still being opened).
        with contextlib.suppress(FileNotFoundError):
            os.utime(live.path)
    collect_snapshots(graph_dir, keep=keep, grace_s=grace_s)
    return Snapshot(version, final)


def collect_snapshots(graph_dir: Path, *, keep: int = 3, grace_s: float = 600.0) -> list[Path]:
    """Delete old snapshots: never the live one, the newest `keep`, or any superseded less than `grace_s` ago.

    A reader that still has a removed file open keeps reading it (an unlinked file lives until
    its last descriptor closes, and read-only Kuzu keeps no side files); a reader that resolved the
    pointer but finds the file gone resolves it again (`GraphReader`), so no grace is needed locally.
    """
    live = live_snapshot(graph_dir)
    snapshots = list_snapshots(graph_dir)
    protected = {s.version for s in snapshots[-keep:]} if keep > 0 else set()
    if live is not None:
        protected.add(live.version)
    now = time.time()
    removed = []
    for snap in snapshots:
        if snap.version in protected:
            continue
        try:
            age = now - snap.path.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < grace_s:
            continue
        snap.path.unlink(missing_ok=True)
        removed.append(snap.path)
    for stale in (graph_dir / SNAPSHOTS).glob("*.building*"):
        try:
            if now - stale.stat().st_mtime > max(grace_s, 3600.0):
                stale.unlink()
        except FileNotFoundError:
            continue
    return removed


# --- tombstones and contributions in the object store ---------------------------------------


tombstone_key = layout.tombstone_key
contrib_key = layout.contrib_key


@dataclass(frozen=True)
class Tombstone:
    """One deleted asset: when it was deleted (epoch seconds) and the object's identity when listed."""

    asset_id: str
    deleted_at: float
    etag: str
    modified: dt.datetime


# Bumped by every tombstone this process writes or clears, so its own readers see the change at once
# instead of after their poll interval (other processes see it within theirs).
_local_changes = [0]
_local_lock = threading.Lock()


def _bump() -> None:
    with _local_lock:
        _local_changes[0] += 1


def write_tombstone(store: ObjectStore, asset_id: str) -> str:
    """Record a deletion: readers hide the asset, the next publication drops it; returns the key."""
    if not is_uuid(asset_id):
        raise ValueError(f"{asset_id!r} is not an asset id")
    key = tombstone_key(asset_id)
    body = {"asset_id": asset_id, "deleted_at": dt.datetime.now(dt.UTC).isoformat()}
    store.put_bytes(key, json.dumps(body).encode())
    _bump()
    return key


def clear_tombstone(store: ObjectStore, asset_id: str) -> None:
    """Forget a deletion: the asset was registered and stored again (a re-upload of the same bytes)."""
    if not is_uuid(asset_id):
        raise ValueError(f"{asset_id!r} is not an asset id")
    store.delete(tombstone_key(asset_id))
    _bump()


def _tombstone_infos(store: ObjectStore) -> dict[str, ObjectInfo]:
    out = {}
    for info in store.list(TOMBSTONE_PREFIX):
        name = info.key[len(TOMBSTONE_PREFIX) :]
        if name.endswith(".json") and is_uuid(name[: -len(".json")]):
            out[name[: -len(".json")]] = info
    return out


def tombstoned_ids(store: ObjectStore) -> frozenset[str]:
    """Ids of the assets deleted since the last publication that reflected them (one listing)."""
    return frozenset(_tombstone_infos(store))


def read_tombstones(store: ObjectStore) -> dict[str, Tombstone]:
    """Every tombstone with its deletion time, for the publisher.

    The time is the JSON's `deleted_at`; a body that cannot be read as one falls back to the
    object's LastModified, which is when the same deletion was written.
    """
    out = {}
    for asset_id, info in _tombstone_infos(store).items():
        try:
            raw = store.get_bytes(info.key)
        except ObjectMissing:
            continue  # cleared between listing and reading
        try:
            deleted_at = dt.datetime.fromisoformat(json.loads(raw)["deleted_at"]).timestamp()
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("tombstone %s has no valid deleted_at (%s); using its LastModified", info.key, exc)
            deleted_at = info.modified.timestamp()
        out[asset_id] = Tombstone(asset_id, deleted_at, info.etag, info.modified)
    return out


def remove_reflected_tombstones(store: ObjectStore, tombstones: dict[str, Tombstone]) -> list[str]:
    """Delete tombstones a live snapshot now reflects; one rewritten since it was read stays.

    Only the etag is compared: every write carries a new `deleted_at` (so new content, a new S3 etag;
    a new file for the local store), while LastModified precision differs between listing and HEAD.
    """
    removed = []
    for asset_id, tomb in tombstones.items():
        key = tombstone_key(asset_id)
        info = store.head(key)
        if info is not None and info.etag == tomb.etag:
            store.delete(key)
            removed.append(asset_id)
    return removed


# --- readers ----------------------------------------------------------------------------


class SnapshotConnection(kuzu.Connection):
    """A Kuzu connection that knows which published snapshot it reads."""

    def __init__(self, database: kuzu.Database, snapshot: Snapshot) -> None:
        super().__init__(database)
        self.snapshot = snapshot


class GraphReader:
    """Read-only access to the published graph for API/MCP processes; thread-safe, follows the pointer.

    With `store`, `graph_dir` is a local cache kept at the object store's published pointer
    (checked at most every `poll_s` seconds). Deleted assets are hidden by listing the tombstones in
    `control` (default: `store`) at most every `poll_s` seconds; with neither, nothing is hidden.
    """

    def __init__(
        self,
        graph_dir: Path,
        *,
        store: Any = None,
        poll_s: float = 5.0,
        control: ObjectStore | None = None,
    ) -> None:
        self.graph_dir = Path(graph_dir)
        self.control = control if control is not None else store
        self.poll_s = poll_s
        self.follower = (
            SnapshotFollower(store, GRAPH, self.graph_dir, suffix=".kuzu", poll_s=poll_s)
            if store is not None
            else None
        )
        self._lock = threading.Lock()
        self._db: kuzu.Database | None = None
        self._snapshot: Snapshot | None = None
        self._tomb_lock = threading.Lock()
        self._tombstones: frozenset[str] | None = None
        self._tombstones_until = 0.0
        self._tombstones_seen = -1

    @classmethod
    def for_settings(cls, settings: Any) -> GraphReader:
        """The local published graph, or with an S3 object store the pulled one in `$DATAFLUX_HOME/cache/graph`."""
        store = open_object_store(settings)
        if not is_remote(settings):
            return cls(settings.graph_dir, poll_s=settings.published_poll_s, control=store)
        return cls(cache_dir(settings, GRAPH), store=store, poll_s=settings.published_poll_s)

    @property
    def snapshot(self) -> Snapshot:
        return self._refresh()[1]

    def available(self) -> bool:
        if self.follower is not None:
            try:
                self.follower.sync()
            except PublishedError as exc:
                log.warning("no published graph available: %s", exc)
                return False
        return live_snapshot(self.graph_dir) is not None

    def _refresh(self) -> tuple[kuzu.Database, Snapshot]:
        if self.follower is not None:
            try:
                self.follower.sync()
            except PublishedError as exc:
                raise GraphError(
                    "graph_unavailable", f"the published graph could not be pulled: {exc}"
                ) from exc
        live = self._published()
        with self._lock:
            if self._snapshot is None or self._snapshot.path != live.path:
                if not live.path.exists():
                    # Superseded and collected between reading the pointer and opening the file.
                    live = self._published()
                # The old Database is not closed here: connections other threads still use hold
                # a reference to it, and it closes itself when the last one goes away.
                self._db = kuzu.Database(str(live.path), read_only=True, buffer_pool_size=READER_BUFFER_POOL)
                self._snapshot = live
            assert self._db is not None
            return self._db, self._snapshot

    def _published(self) -> Snapshot:
        live = live_snapshot(self.graph_dir)
        if live is None:
            raise GraphError("graph_unavailable", "no graph has been published yet (materialize media_graph)")
        return live

    @contextmanager
    def connection(self) -> Iterator[SnapshotConnection]:
        """A connection on the live snapshot, for one request; `conn.snapshot` says which one."""
        db, snapshot = self._refresh()
        conn = SnapshotConnection(db, snapshot)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, cypher: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read query as dicts; values only ever travel as parameters."""
        with self.connection() as conn:
            result = _single(conn.execute(cypher, parameters or {}))
            columns = result.get_column_names()
            return [dict(zip(columns, row, strict=True)) for row in _rows(result)]

    def deleted_assets(self) -> frozenset[str]:
        """Assets deleted and not yet dropped by a publication: readers hide them.

        The tombstone listing is cached for `poll_s` seconds (a deletion in this process is seen at
        once); a failed listing keeps the last known set and is logged.
        """
        if self.control is None:
            return frozenset()
        with self._tomb_lock:
            changes = _local_changes[0]
            if (
                self._tombstones is not None
                and time.monotonic() < self._tombstones_until
                and changes == self._tombstones_seen
            ):
                return self._tombstones
            try:
                self._tombstones = tombstoned_ids(self.control)
            except (OSError, BotoCoreError, ClientError) as exc:
                if self._tombstones is None:
                    raise GraphError(
                        "graph_unavailable",
                        f"the deleted-asset list could not be read from {self.control.url}: {exc}",
                    ) from exc
                log.warning("could not list tombstones in %s, using the last list: %s", self.control.url, exc)
            self._tombstones_seen = changes
            self._tombstones_until = time.monotonic() + self.poll_s
            return self._tombstones

    def counts(self) -> dict[str, dict[str, int]]:
        """Node and relation counts of the live snapshot."""
        nodes = {t: self.query(f"MATCH (n:{t}) RETURN count(n) AS c")[0]["c"] for t in NODE_TYPES}
        rels = {t: self.query(f"MATCH ()-[r:{t}]->() RETURN count(r) AS c")[0]["c"] for t in REL_TYPES}
        return {"nodes": nodes, "relations": rels}


# --- queries ----------------------------------------------------------------------------


def validate_entity_id(entity_id: Any) -> str:
    if not isinstance(entity_id, str) or not _ENTITY_ID_RE.match(entity_id):
        raise GraphError(
            "invalid_entity_id",
            "entity_id must be an asset/segment/collection UUID or a concept name "
            "(letters, digits, space, '_', '-', '.', ':'; at most 128 characters)",
            "entity_id",
        )
    return entity_id


def validate_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise GraphError("invalid_depth", f"depth must be an integer from 1 to {MAX_DEPTH}", "depth")
    return depth


def validate_types(types: Any) -> tuple[str, ...]:
    if types is None:
        return REL_TYPES
    if isinstance(types, str):
        types = [t for t in types.split(",") if t.strip()]
    out = []
    for t in types:
        name = t.strip().upper() if isinstance(t, str) else t
        if name not in REL_TYPES:
            raise GraphError(
                "invalid_relation_type",
                f"unknown relation type {t!r}; allowed: {', '.join(REL_TYPES)}",
                "types",
            )
        if name not in out:
            out.append(name)
    return tuple(out) or REL_TYPES


_NODE_PROPS = (
    "filename",
    "media_type",
    "mime_type",
    "status",
    "duration",
    "collection_id",
    "asset_id",
    "segment_type",
    "sequence_number",
    "start_time",
    "end_time",
    "page",
    "name",
    "auto_generated",
)
_REL_PROPS = (
    "score",
    "modality",
    "confidence",
    "segments",
    "shared_segments",
    "segment_pairs",
    "spans",
    "gap",
)


def _node(value: dict[str, Any]) -> dict[str, Any]:
    props = {k: value[k] for k in _NODE_PROPS if value.get(k) is not None}
    if value.get("created_at") is not None:
        props["created_at"] = value["created_at"].isoformat()
    return {"id": value["id"], "type": value["_label"], "properties": props}


def _hidden(node: dict[str, Any], deleted: frozenset[str]) -> bool:
    if not deleted:
        return False
    props = node["properties"]
    return node["id"] in deleted or props.get("asset_id") in deleted


def relationships(reader: GraphReader, entity_id: str, depth: int = 1, types: Any = None) -> dict[str, Any]:
    """Nodes and relations within `depth` hops of an entity, following only the allowed relation types."""
    entity_id = validate_entity_id(entity_id)
    depth = validate_depth(depth)
    rel_types = validate_types(types)
    deleted = reader.deleted_assets()
    with reader.connection() as conn:
        snapshot = conn.snapshot
        start = None
        for label in NODE_TYPES:
            found = _fetch(conn, f"MATCH (x:{label}) WHERE x.id = $id RETURN x", {"id": entity_id})
            if found:
                start = _node(found[0][0])
                break
        if start is None or _hidden(start, deleted):
            raise GraphError("not_found", f"no graph entity with id {entity_id!r}", "entity_id")
        nodes = {entity_id: start}
        edges: dict[tuple[str, str, str], dict[str, Any]] = {}
        frontier = {entity_id: start["type"]}
        truncated = False
        for _ in range(depth):
            next_frontier: dict[str, str] = {}
            by_label: dict[str, list[str]] = {}
            for node_id, label in frontier.items():
                by_label.setdefault(label, []).append(node_id)
            for rel in rel_types:  # names and labels below come from the allow-lists in schema.py
                for src_label, dst_label in REL_PAIRS[rel]:
                    for here, there, outgoing in (
                        (src_label, dst_label, True),
                        (dst_label, src_label, False),
                    ):
                        ids = by_label.get(here)
                        if not ids:
                            continue
                        arrow = f"-[r:{rel}]->" if outgoing else f"<-[r:{rel}]-"
                        found = _fetch(
                            conn,
                            f"MATCH (x:{here}){arrow}(y:{there}) WHERE x.id IN $ids RETURN x.id, r, y LIMIT $limit",
                            {"ids": ids, "limit": MAX_EDGES_PER_HOP + 1},
                        )
                        if len(found) > MAX_EDGES_PER_HOP:
                            truncated = True
                            found = found[:MAX_EDGES_PER_HOP]
                        for x_id, edge, other in found:
                            node = _node(other)
                            if _hidden(node, deleted):
                                continue
                            if node["id"] not in nodes:
                                nodes[node["id"]] = node
                                next_frontier[node["id"]] = node["type"]
                            src, dst = (x_id, node["id"]) if outgoing else (node["id"], x_id)
                            key = (src, dst, rel)
                            if key not in edges:
                                props = {k: edge[k] for k in _REL_PROPS if edge.get(k) is not None}
                                edges[key] = {"source": src, "target": dst, "type": rel, "properties": props}
            frontier = next_frontier
            if not frontier:
                break
    return {
        "entity": nodes[entity_id],
        "nodes": list(nodes.values()),
        "edges": list(edges.values()),
        "depth": depth,
        "types": list(rel_types),
        "truncated": truncated,
        "snapshot_version": snapshot.version,
    }


def _single(result: kuzu.QueryResult | list[kuzu.QueryResult]) -> kuzu.QueryResult:
    # Kuzu returns a list only for a string of several statements; every query here is one.
    if isinstance(result, list):
        raise TypeError("expected the result of a single Cypher statement")
    return result


def _rows(result: kuzu.QueryResult) -> list[list[Any]]:
    rows: list[list[Any]] = []
    while result.has_next():
        # get_next() yields dicts only after rows_as_dict(), which nothing here calls.
        rows.append(cast(list[Any], result.get_next()))
    return rows


def _fetch(conn: kuzu.Connection, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
    return _rows(_single(conn.execute(cypher, params)))


def related_assets(
    reader: GraphReader, asset_ids: list[str], *, per_asset: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """Graph neighbours of result assets (duplicates, similar assets), for search expansion."""
    ids = [validate_entity_id(a) for a in asset_ids]
    if not ids:
        return {}
    deleted = reader.deleted_assets()
    rows = reader.query(
        "MATCH (a:Asset)-[r:SIMILAR_TO|DUPLICATE_OF]-(b:Asset) WHERE a.id IN $ids "
        "RETURN a.id AS source, b.id AS asset_id, label(r) AS relation, r.score AS score "
        "ORDER BY source, score DESC",
        {"ids": ids},
    )
    out: dict[str, list[dict[str, Any]]] = {a: [] for a in ids}
    for row in rows:
        if row["asset_id"] in deleted or row["asset_id"] == row["source"]:
            continue
        bucket = out[row["source"]]
        if len(bucket) < per_asset and all(b["asset_id"] != row["asset_id"] for b in bucket):
            bucket.append({k: row[k] for k in ("asset_id", "relation", "score")})
    return out
