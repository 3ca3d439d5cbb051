"""The landing area: how files enter DataFlux (ingest, upload, plain copies) and how the sensor reads it.

Everything that enters goes through `landing/` in the object store; the sensor (and its in-process
twin, `dataflux process`) turns landing objects into catalog rows and Dagster partitions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash, is_uuid
from dataflux_pipelines.objectstore import ObjectExists, ObjectInfo, ObjectMissing, ObjectStore
from dataflux_pipelines.records import Status
from dataflux_pipelines.settings import Settings

CONTROL_PREFIX = layout.REANALYZE_PREFIX
_CHUNK = 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
# Rough processing rate used for the ETA an upload answers with (seconds per MiB, plus a floor).
_ETA_BASE_S = 5.0
_ETA_PER_MIB_S = 0.5


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"upload exceeds the limit of {limit} bytes")


class EmptyUpload(Exception):
    """A zero-byte upload: nothing to analyse."""


@dataclass(frozen=True)
class UploadMeta:
    """Sidecar metadata that travels with a landing file."""

    filename: str
    context: str | None = None
    priority: int = 5
    collection_id: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= int(self.priority) <= 10:
            raise ValueError(f"priority must be between 1 and 10, got {self.priority}")
        if self.collection_id is not None and not is_uuid(self.collection_id):
            raise ValueError(f"collection_id {self.collection_id!r} is not a UUID")

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "filename": self.filename,
                "context": self.context,
                "priority": self.priority,
                "collection_id": self.collection_id,
                "sha256": self.sha256,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes, default_name: str) -> UploadMeta:
        data = json.loads(raw)
        return cls(
            filename=str(data.get("filename") or default_name),
            context=data.get("context"),
            priority=int(data.get("priority") or 5),
            collection_id=data.get("collection_id"),
            sha256=data.get("sha256"),
        )


@dataclass(frozen=True)
class LandingReceipt:
    asset_id: str
    status: str
    landing_key: str | None
    duplicate_of: str | None = None
    eta_seconds: int = 0


def safe_filename(name: str) -> str:
    """File names are metadata only: keep a readable base name, never a path."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = _SAFE_NAME.sub("_", base)[:200].strip(". ")
    return base or "unnamed"


def eta_seconds(size: int) -> int:
    return int(_ETA_BASE_S + _ETA_PER_MIB_S * size / (1024 * 1024))


def upload_key(asset_id: str) -> str:
    return f"{layout.LANDING_PREFIX}uploads/{asset_id}"


def sidecar_key(key: str) -> str:
    return key + layout.SIDECAR_SUFFIX


# --- writing into landing -----------------------------------------------------------------


class Registrations:
    """Catalog rows of landed files, written in batches: one Lance merge per batch, not per file.

    Use as a context manager; rows still buffered are written on exit. A landed file whose row is
    not written yet (the process died) is still in landing with its sidecar, and the next
    evaluation of landing registers it.
    """

    def __init__(self, catalog: Catalog, batch: int = 256) -> None:
        self.catalog = catalog
        self.batch = batch
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.catalog.upsert_assets(rows)

    def __enter__(self) -> Registrations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _land(
    store: ObjectStore,
    catalog: Catalog,
    path: Path,
    sha256: str,
    size: int,
    meta: UploadMeta,
    registrations: Registrations | None = None,
    known: Mapping[str, dict[str, Any]] | None = None,
) -> LandingReceipt:
    """Land one hashed file, or report the asset its bytes already are. `known`: the catalog rows
    already read for a batch of files by asset id (`_existing_assets`); without it the row is read."""
    asset_id = asset_id_for_hash(sha256)
    existing = known.get(asset_id) if known is not None else catalog.get_asset(asset_id)
    if existing is not None:
        return LandingReceipt(asset_id, existing["status"], existing.get("landing_key"), asset_id)
    key = upload_key(asset_id)
    meta = UploadMeta(meta.filename, meta.context, meta.priority, meta.collection_id, sha256)
    try:
        # The sidecar is the lock: of two uploads of the same bytes, one conditional write wins.
        store.put_bytes(sidecar_key(key), meta.to_json(), if_absent=True)
    except ObjectExists:
        return LandingReceipt(asset_id, Status.QUEUED.value, key, asset_id)
    store.put_file(key, path)
    row = landing_row(key, asset_id, sha256, size, meta)
    if registrations is None:
        catalog.upsert_assets([row])
    else:
        registrations.add(row)
    return LandingReceipt(asset_id, Status.QUEUED.value, key, None, eta_seconds(size))


def receive_upload(
    store: ObjectStore,
    catalog: Catalog,
    stream: BinaryIO,
    filename: str,
    *,
    context: str | None = None,
    priority: int = 5,
    collection_id: str | None = None,
    max_bytes: int,
    scratch: Path,
) -> LandingReceipt:
    """Stream an upload to a temp file while hashing, then land it (or report the duplicate)."""
    meta = UploadMeta(safe_filename(filename), context, priority, collection_id)
    scratch.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=scratch, prefix="upload-")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise EmptyUpload("the uploaded file is empty")
        return _land(store, catalog, Path(name), digest.hexdigest(), size, meta)
    finally:
        Path(name).unlink(missing_ok=True)


# Files hashed before their catalog rows are looked up together (one query instead of one per file,
# ~2.8 ms each: 0.9 s of ingesting 320 documents): at most this many, or this many bytes.
LOOKUP_FILES = 64
LOOKUP_BYTES = 64 * 1024 * 1024


def ingest_paths(
    store: ObjectStore,
    catalog: Catalog,
    paths: Iterable[Path],
    *,
    context: str | None = None,
    priority: int = 5,
    collection_id: str | None = None,
    registrations: Registrations | None = None,
) -> Iterator[tuple[Path, LandingReceipt]]:
    """Copy files (folders recursively) into landing; yields one receipt per file, in order.

    Catalog rows go through `registrations` (the caller's batch), else through one batch written
    when the iteration ends. Files are hashed a few at a time (`LOOKUP_FILES`, `LOOKUP_BYTES`) and
    the rows their bytes may already have are read in one query per such chunk.
    """
    # The caller's batch is the caller's to write; a batch of our own is written when we finish.
    with contextlib.nullcontext(registrations) if registrations else Registrations(catalog) as batch:
        for chunk in _hashed_chunks(files_to_ingest(paths)):
            known = _existing_assets(catalog, [asset_id_for_hash(sha256) for _, sha256, _ in chunk])
            for path, sha256, size in chunk:
                meta = UploadMeta(safe_filename(path.name), context, priority, collection_id)
                yield path, _land(store, catalog, path, sha256, size, meta, batch, known)


def _hashed_chunks(paths: Iterable[Path]) -> Iterator[list[tuple[Path, str, int]]]:
    """(path, sha256, size) of each file, in chunks of at most LOOKUP_FILES files or LOOKUP_BYTES bytes."""
    chunk: list[tuple[Path, str, int]] = []
    hashed = 0
    for path in paths:
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as handle:
                for block in iter(functools.partial(handle.read, _CHUNK), b""):
                    digest.update(block)
                    size += len(block)
        except OSError:
            if chunk:
                yield chunk  # the files before it are landed first, as when each landed on its own
            raise
        chunk.append((path, digest.hexdigest(), size))
        hashed += size
        if len(chunk) >= LOOKUP_FILES or hashed >= LOOKUP_BYTES:
            yield chunk
            chunk, hashed = [], 0
    if chunk:
        yield chunk


def files_to_ingest(paths: Iterable[Path]) -> Iterator[Path]:
    """The files under these paths (folders recursively, sorted); hidden files and sidecars are skipped."""
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if not (path.name.startswith(".") or path.name.endswith(layout.SIDECAR_SUFFIX)):
                yield path


# --- reading landing (the sensor's evaluation) ----------------------------------------------


def landing_row(key: str, asset_id: str, sha256: str, size: int, meta: UploadMeta) -> dict[str, Any]:
    """The catalog row of a file waiting in landing (queued, linked to its landing key)."""
    return {
        "id": asset_id,
        "filename": meta.filename,
        "file_hash": sha256,
        "file_size": size,
        "status": Status.QUEUED.value,
        "landing_key": key,
        "context": meta.context,
        "priority": meta.priority,
        "collection_id": meta.collection_id,
    }


def _existing_assets(catalog: Catalog, asset_ids: list[str], chunk: int = 500) -> dict[str, dict[str, Any]]:
    """Catalog rows of these ids, by id, read in a few `IN` queries instead of one query per id."""
    wanted = list(dict.fromkeys(asset_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), chunk):
        for row in catalog.get_assets(wanted[start : start + chunk]):
            found[row["id"]] = row
    return found


@dataclass
class PendingFile:
    asset_id: str
    landing_key: str
    priority: int
    run_key: str
    filename: str = ""


@dataclass
class LandingPlan:
    """What one evaluation of the landing area found: new partitions and the runs to request."""

    pending: list[PendingFile] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (landing key, existing asset id)
    reanalyze: list[tuple[str, int, str]] = field(default_factory=list)  # (asset id, priority, run key)
    skipped_unsettled: list[str] = field(default_factory=list)
    obsolete_requests: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.pending or self.reanalyze)


def _hash_object(store: ObjectStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with store.open_read(key) as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _read_meta(store: ObjectStore, info: ObjectInfo) -> UploadMeta:
    default = safe_filename(info.metadata.get("filename") or info.key.rsplit("/", 1)[-1])
    try:
        raw = store.get_bytes(sidecar_key(info.key))
    except ObjectMissing:
        # S3 object metadata can carry the same fields as a sidecar (x-amz-meta-dataflux-*);
        # listings never include it, so ask for the object's head.
        head = store.head(info.key) if not info.metadata else info
        md = head.metadata if head is not None else {}
        return UploadMeta(
            default,
            md.get("dataflux-context") or None,
            int(md.get("dataflux-priority") or 5),
            md.get("dataflux-collection-id") or None,
        )
    try:
        return UploadMeta.from_json(raw, default)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sidecar of {info.key} is invalid: {exc}") from exc


def plan_landing(
    store: ObjectStore,
    catalog: Catalog,
    known_partitions: Container[str],
    *,
    settle_seconds: float = 2.0,
    log: Any = None,
) -> LandingPlan:
    """Diff the landing listing against the catalog and Dagster's partitions.

    Robust to keys sharing a timestamp and to deleted keys: nothing depends on listing order or
    on a `since_key`; every object still in landing is either registered or new.
    """
    plan = LandingPlan()
    registered = catalog.landing_index()
    now = dt.datetime.now(dt.UTC)
    objects = [
        info
        for info in store.list(layout.LANDING_PREFIX)
        if not info.key.endswith(layout.SIDECAR_SUFFIX) and not info.key.rsplit("/", 1)[-1].startswith(".")
    ]
    arrivals: list[tuple[ObjectInfo, str, str, int, UploadMeta]] = []
    for info in objects:
        row = registered.get(info.key)
        if row is not None:
            asset_id = row["id"]
            if row["status"] == Status.QUEUED.value and asset_id not in known_partitions:
                plan.pending.append(
                    PendingFile(
                        asset_id,
                        info.key,
                        int(row["priority"] or 5),
                        f"{info.key}@{info.etag}",
                        row.get("filename") or "",
                    )
                )
            continue
        if settle_seconds and (now - info.modified).total_seconds() < settle_seconds:
            plan.skipped_unsettled.append(info.key)  # maybe still being copied; next tick
            continue
        try:
            meta = _read_meta(store, info)
        except ValueError as exc:
            if log:
                log.warning(str(exc))
            meta = UploadMeta(safe_filename(info.key.rsplit("/", 1)[-1]))
        sha256, size = _hash_object(store, info.key)
        arrivals.append((info, asset_id_for_hash(sha256), sha256, size, meta))
    # One catalog lookup and one catalog write for all new files: a Lance merge per file would cost
    # a commit (and a fragment) each, and every later read pays for the fragments.
    known = _existing_assets(catalog, [a for _, a, _, _, _ in arrivals])
    registrations: list[dict[str, Any]] = []
    for info, asset_id, sha256, size, meta in arrivals:
        existing = known.get(asset_id)
        if existing is not None and existing.get("landing_key") not in (None, info.key):
            plan.duplicates.append((info.key, asset_id))  # same bytes already queued under another key
            continue
        if existing is not None and existing.get("landing_key") is None:
            plan.duplicates.append((info.key, asset_id))  # already processed
            continue
        row = landing_row(info.key, asset_id, sha256, size, meta)
        known[asset_id] = row
        registrations.append(row)
        plan.pending.append(
            PendingFile(asset_id, info.key, meta.priority, f"{info.key}@{info.etag}", meta.filename)
        )
    catalog.upsert_assets(registrations)
    for info in store.list(CONTROL_PREFIX):
        try:
            request = json.loads(store.get_bytes(info.key))
        except (ObjectMissing, ValueError):
            continue
        asset_id = str(request.get("asset_id", ""))
        if is_uuid(asset_id) and asset_id in known_partitions:
            plan.reanalyze.append((asset_id, int(request.get("priority") or 5), info.key))
        else:
            # Not a partition yet: the file is still queued (its first run covers it) or was deleted.
            plan.obsolete_requests.append(info.key)
    plan.pending.sort(key=lambda p: (p.priority, p.landing_key))
    return plan


@dataclass(frozen=True)
class PlannedRun:
    """One run to request: files that share a priority (or a re-analysis), in partition order."""

    asset_ids: tuple[str, ...]
    priority: int
    run_key: str
    reanalysis_key: str | None = None  # the control object that asked for it


@dataclass
class RunPlan:
    """What to do now: partitions to add (in this order), runs to request, and what the plan cleaned up."""

    new_partitions: list[str] = field(default_factory=list)  # asset ids
    filenames: dict[str, str] = field(default_factory=dict)  # asset id -> file name, for new partitions
    runs: list[PlannedRun] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    unsettled: int = 0

    @property
    def reanalysis_keys(self) -> list[str]:
        return [r.reanalysis_key for r in self.runs if r.reanalysis_key]


def plan_runs(
    store: ObjectStore,
    catalog: Catalog,
    known_partitions: Container[str],
    *,
    settle_seconds: float = 2.0,
    max_files_per_run: int = 100,
    recover: Mapping[str, int] | None = None,
    log: Any = None,
) -> RunPlan:
    """The one planner for landing → runs, called by the landing sensor and by `dataflux process`.

    New files are grouped by priority (most urgent first) into runs of at most `max_files_per_run`,
    so each group is a contiguous range of the dynamic partitions; duplicates and obsolete
    re-analysis requests are removed from the object store; `recover` names files (with their attempt
    counts) that already have a partition but whose run never happened or died: they run again, after
    the new files, under a run key that changes with the attempt.
    """
    landing = plan_landing(store, catalog, known_partitions, settle_seconds=settle_seconds, log=log)
    drop_duplicates(store, landing)
    clear_obsolete_requests(store, landing)
    plan = RunPlan(duplicates=landing.duplicates, unsettled=len(landing.skipped_unsettled))
    by_priority: dict[int, list[PendingFile]] = {}
    for pending in landing.pending:
        by_priority.setdefault(pending.priority, []).append(pending)
    for priority in sorted(by_priority):
        group = by_priority[priority]
        for start in range(0, len(group), max_files_per_run):
            chunk = group[start : start + max_files_per_run]
            ids = tuple(p.asset_id for p in chunk)
            plan.new_partitions.extend(ids)
            plan.filenames.update({p.asset_id: p.filename for p in chunk})
            run_key = hashlib.sha256("\n".join(p.run_key for p in chunk).encode()).hexdigest()[:32]
            plan.runs.append(PlannedRun(ids, priority, run_key))
    for asset_id, priority, request_key in landing.reanalyze:
        plan.runs.append(PlannedRun((asset_id,), priority, request_key, reanalysis_key=request_key))
    planned = {a for r in plan.runs for a in r.asset_ids}
    recover = recover or {}
    recovered = sorted(set(recover) - planned)
    for start in range(0, len(recovered), max_files_per_run):
        ids = tuple(recovered[start : start + max_files_per_run])
        attempts = "\n".join(f"{a}:{recover[a]}" for a in ids)
        run_key = "recover:" + hashlib.sha256(attempts.encode()).hexdigest()[:24]
        plan.runs.append(PlannedRun(ids, 5, run_key))
    return plan


def drop_duplicates(store: ObjectStore, plan: LandingPlan) -> None:
    """Remove landing copies of bytes DataFlux already has (the catalog keeps the first name)."""
    for key, _ in plan.duplicates:
        store.delete(key)
        store.delete(sidecar_key(key))


def clear_reanalysis_request(store: ObjectStore, request_key: str) -> None:
    store.delete(request_key)


def clear_obsolete_requests(store: ObjectStore, plan: LandingPlan) -> None:
    for key in plan.obsolete_requests:
        store.delete(key)


def request_reanalysis(store: ObjectStore, asset_id: str, priority: int | None, force: bool) -> str:
    """Ask the landing sensor for a new run of one partition; returns the request key."""
    if not is_uuid(asset_id):
        raise ValueError(f"{asset_id!r} is not an asset id")
    request_id = str(uuid.uuid4())
    key = f"{CONTROL_PREFIX}{asset_id}-{request_id}.json"
    body = {
        "asset_id": asset_id,
        "priority": priority or 5,
        "force": force,
        "requested_at": str(dt.datetime.now(dt.UTC)),
    }
    store.put_bytes(key, json.dumps(body).encode())
    return key


def delete_asset(settings: Settings, store: ObjectStore, catalog: Catalog, asset_id: str) -> bool:
    """Remove an asset from every store: objects, landing, catalog, segments, vectors, graph.

    The graph part is a tombstone in the object store (`control/tombstones/`), so readers and the
    graph writer on other machines see the deletion too; `settings` is kept for callers.
    """
    row = catalog.get_asset(asset_id)
    if row is None:
        return False
    from dataflux_pipelines.embeddings.stage import delete_asset_vectors
    from dataflux_pipelines.graph.store import contrib_key, write_tombstone

    if row.get("landing_key"):
        store.delete(row["landing_key"])
        store.delete(sidecar_key(row["landing_key"]))
    store.delete_prefix(layout.asset_prefix(asset_id))
    for info in list(store.list(f"{CONTROL_PREFIX}{asset_id}")):
        store.delete(info.key)
    delete_asset_vectors(catalog.db, asset_id)
    catalog.delete_asset_rows(asset_id)
    store.delete(contrib_key(asset_id))
    write_tombstone(store, asset_id)
    return True
