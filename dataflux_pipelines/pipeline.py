"""The per-file stages, framework-free: media_file → segments → segment_embeddings → graph contribution.

Each stage takes many asset ids at once (so models load once and inference batches across files)
and returns one outcome per asset: a failure is a value with a reason code, never an exception
that takes other files down. The Dagster op in `ingest/assets.py` only wires this to events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.heap import release_heap
from dataflux_pipelines.identity import segment_id_for, sha256_file
from dataflux_pipelines.landing import sidecar_key
from dataflux_pipelines.media.sniff import check_claim, claimed_media_type
from dataflux_pipelines.media.types import MediaAnalysis, Probe
from dataflux_pipelines.objectstore import (
    ObjectMissing,
    ObjectStore,
    ObjectStoreUnavailable,
    open_object_store,
)
from dataflux_pipelines.records import SegmentRecord, Status
from dataflux_pipelines.settings import Settings

if TYPE_CHECKING:
    from dataflux_pipelines.media.sandbox import DecodeWorker
    from dataflux_pipelines.models.registry import ModelRegistry

STAGES = ("media_file", "segments", "segment_embeddings", "graph_contributions")
# The models `embed_segments` loads for any file (registry property names), preloaded from `media_file` on.
EMBEDDERS = ("vision", "image_model", "text")


def kill_at_boundary(settings: Settings, stage: str) -> None:
    """The fault-test hook (DATAFLUX_KILL_AT): die like a killed worker once `stage` has committed."""
    if settings.kill_at == stage:
        logging.getLogger(__name__).warning("DATAFLUX_KILL_AT=%s: SIGKILL of process %d", stage, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Outcome:
    """What one stage did to one file."""

    asset_id: str
    error: MediaError | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


Log = Callable[[str], None]


def _probe_to_dict(probe: Probe) -> dict[str, Any]:
    return dataclasses.asdict(probe)


def stored_fields(probe: Probe, sha256: str, size: int, key: str) -> dict[str, Any]:
    """The catalog fields `media_file` fills for a stored original."""
    return {
        "file_hash": sha256,
        "file_size": size,
        "mime_type": probe.mime_type,
        "media_type": probe.media_type,
        "storage_path": key,
        "duration": probe.duration,
        "width": probe.width,
        "height": probe.height,
        "metadata": _probe_to_dict(probe),
    }


def _probe_from_dict(data: dict[str, Any]) -> Probe:
    names = {f.name for f in dataclasses.fields(Probe)}
    return Probe(**{k: v for k, v in data.items() if k in names})


class Profile:
    """Where a run's time went: seconds per media type and phase (decode, analyse, each model, writes),
    summed over files; shown in the Dagster run and in `dataflux process --json`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, dict[str, float]] = {}
        self.files: dict[str, int] = {}

    def add(self, media_type: str | None, phase: str, seconds: float) -> None:
        kind = media_type or "unknown"
        with self._lock:
            phases = self.seconds.setdefault(kind, {})
            phases[phase] = phases.get(phase, 0.0) + seconds

    def count(self, media_type: str | None) -> None:
        kind = media_type or "unknown"
        with self._lock:
            self.files[kind] = self.files.get(kind, 0) + 1

    @contextlib.contextmanager
    def timed(self, media_type: str | None, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(media_type, phase, time.perf_counter() - started)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                kind: {
                    "files": self.files.get(kind, 0),
                    **{k: round(v, 3) for k, v in sorted(phases.items())},
                }
                for kind, phases in sorted(self.seconds.items())
            }


# A file estimated to cost more than this multiple of the run's median goes into a batch of its own,
# after the others: one huge file then delays nobody, and the rest keep one write per table per batch.
HEAVY_FACTOR = 4.0


def estimated_cost(row: dict[str, Any]) -> float:
    """Rough work units of one file from its catalog row (size, duration, pixels), for ordering only."""
    media_type = row.get("media_type")
    size = float(row.get("file_size") or 0)
    duration = float(row.get("duration") or 0.0)
    megapixels = float(row.get("width") or 0) * float(row.get("height") or 0) / 1e6
    if media_type == "video":
        return 1.0 + duration * (1.0 + megapixels)
    if media_type == "audio":
        return 1.0 + duration / 10.0
    if media_type == "image":
        return 1.0 + megapixels / 4.0
    return 1.0 + size / 50_000  # documents: text volume drives chunks, segments and embeddings


def cost_batches(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The files of a run in the order they are finished: one batch of all ordinary files, then each
    heavy file (over HEAVY_FACTOR x the median cost) alone, cheapest first."""
    if not rows:
        return []
    costs = {r["id"]: estimated_cost(r) for r in rows}
    ordered = sorted(costs, key=lambda a: costs[a])
    median = costs[ordered[len(ordered) // 2]] if len(ordered) > 2 else min(costs.values())
    light = [a for a in ordered if costs[a] <= HEAVY_FACTOR * median]
    heavy = [a for a in ordered if costs[a] > HEAVY_FACTOR * median]
    return ([light] if light else []) + [[a] for a in heavy]


def prestart_decoders(settings: Settings) -> None:
    """Start the decode workers of a `dataflux process` about to run, before its Dagster start-up.

    The landing's registered files name the media types to warm up for (`analyze.warm_up`: a video's
    worker loads TransNetV2), so that load runs on the second core during the ~4 s the command spends
    importing Dagster and loading its definitions; the run's pipeline takes these workers
    (`sandbox.take_spare`). Nothing is started when landing holds nothing registered."""
    from dataflux_pipelines.media.analyze import warm_up
    from dataflux_pipelines.media.sandbox import prestart
    from dataflux_pipelines.media.types import AnalysisOptions

    try:
        names = Catalog(settings, reader=True).landing_filenames()
    except Exception as exc:  # the run itself reports a catalog that cannot be read
        logging.getLogger(__name__).debug("no decode worker prestart: %s", exc)
        return
    if not names:
        return
    kinds = sorted({k for k in map(claimed_media_type, names) if k})
    prestart(
        min(max(1, settings.decode_workers), len(names)),
        timeout_s=settings.decode_timeout_s,
        memory_mb=settings.decode_memory_mb,
        warm=warm_up if kinds else None,
        warm_args=(kinds, AnalysisOptions.from_settings(settings)),
    )


class MediaPipeline:
    """Runs the per-file stages over a batch of assets against the configured stores."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: Log | None = None,
        registry: ModelRegistry | None = None,
        registry_factory: Callable[[], ModelRegistry] | None = None,
        catalog: Catalog | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.settings = settings
        self.store: ObjectStore = store or open_object_store(settings)
        self.catalog = catalog or Catalog(settings)
        self.log = log or (lambda message: None)
        self._registry = registry
        # Builds the registry on first use (e.g. the process-wide one); building imports torch, which
        # the first model preload does on its thread, beside the decoding.
        self._registry_factory = registry_factory
        self._registry_lock = threading.Lock()
        self._lock = threading.Lock()
        self._workers: list[DecodeWorker] = []
        self._idle: list[DecodeWorker] = []
        self.profile = Profile()
        self.spent: dict[str, float] = {}  # seconds each file has used so far, against its time budget
        self.media_types: dict[str, str | None] = {}
        self._preloads: list[threading.Thread] = []
        self._preload_requested: set[str] = set()
        self._loads_before: set[str] | None = None

    # --- shared resources, created once per batch -------------------------------------------
    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            with self._registry_lock:
                if self._registry is None:
                    if self._registry_factory is not None:
                        self._registry = self._registry_factory()
                    else:
                        from dataflux_pipelines.models.registry import ModelRegistry

                        self._registry = ModelRegistry(self.settings)
        return self._registry

    @contextlib.contextmanager
    def decoder(self) -> Iterator[DecodeWorker]:
        """A decode worker process for this thread; `decode_workers` of them serve a batch in parallel."""
        from dataflux_pipelines.media.sandbox import DecodeWorker, take_spare

        with self._lock:
            if self._idle:
                worker = self._idle.pop()
            else:
                limits = (self.settings.decode_timeout_s, self.settings.decode_memory_mb)
                worker = take_spare(*limits) or DecodeWorker(timeout_s=limits[0], memory_mb=limits[1])
                self._workers.append(worker)
        try:
            yield worker
        finally:
            with self._lock:
                self._idle.append(worker)

    def start_decoders(self, files: int, media_types: Iterable[str | None] = ()) -> None:
        """Start the decode workers a batch will use now, so no file's time budget pays for a start,
        and have each warm up for these media types (`analyze.warm_up`, on the worker's own thread)."""
        from dataflux_pipelines.media.analyze import warm_up

        wanted = min(max(1, self.settings.decode_workers), files)
        kinds = sorted({t for t in media_types if t})
        with self.profile.timed("run", "start_decoders"), contextlib.ExitStack() as held:
            for _ in range(wanted):  # held together, so each is a different worker
                worker = held.enter_context(self.decoder())
                worker.start()
                if kinds:
                    worker.call(warm_up, kinds, self.analysis_options())

    def each(
        self,
        asset_ids: Sequence[str],
        fn: Callable[[str], Outcome],
        *,
        ready: Callable[[list[str]], None] | None = None,
    ) -> dict[str, Outcome]:
        """`fn` over every asset, on up to `decode_workers` threads (each with its own decode worker).

        With `ready`, this thread does not just wait: whenever files have finished while others still
        run, it hands them to `ready` (each file once, in batches of what finished meanwhile) and goes
        on. The main process's work on finished files (transcripts, OCR) then overlaps the decoding
        of the next ones, even with one decode worker; the files still running when the last batch
        is handed over, the caller takes after this returns."""
        workers = max(1, self.settings.decode_workers)
        if len(asset_ids) <= 1 or (workers == 1 and ready is None):
            return {a: fn(a) for a in asset_ids}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(fn, a): a for a in asset_ids}
            pending = set(futures)
            while ready is not None and pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                if pending:
                    ready([a for f, a in futures.items() if f in finished])
            return {a: f.result() for f, a in futures.items()}

    def close(self) -> None:
        for thread in self._preloads:  # a run that ended early leaves no thread loading behind it
            thread.join()
        with self._lock:
            workers, self._workers, self._idle = self._workers, [], []
        for worker in workers:
            worker.close()

    def __enter__(self) -> MediaPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _source(self, row: dict[str, Any]) -> Iterator[Path]:
        key = row.get("landing_key") or row.get("storage_path")
        if not key:
            raise MediaError(
                Reason.MISSING_SOURCE, "the asset has neither a landing object nor a stored original"
            )
        try:
            with self.store.local_copy(key) as path:
                yield path
        except ObjectMissing as exc:
            raise MediaError(Reason.MISSING_SOURCE, f"object {key} is gone from the object store") from exc

    def _guard(self, asset_id: str, fn: Callable[[], dict[str, Any]]) -> Outcome:
        started = time.perf_counter()
        try:
            metadata = fn()
        except MediaError as exc:
            return Outcome(asset_id, exc, {"seconds": self._spend(asset_id, started)})
        except Exception as exc:  # a bug or a store outage must fail this file only, with its reason
            error = MediaError(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return Outcome(asset_id, error, {"seconds": self._spend(asset_id, started)})
        metadata["seconds"] = self._spend(asset_id, started)
        return Outcome(asset_id, None, metadata)

    def _spend(self, asset_id: str, started: float) -> float:
        seconds = time.perf_counter() - started
        with self._lock:
            self.spent[asset_id] = self.spent.get(asset_id, 0.0) + seconds
        return round(seconds, 3)

    # --- the per-file time budget ------------------------------------------------------------
    def remaining_budget(self, asset_id: str) -> float:
        return self.settings.file_time_budget_s - self.spent.get(asset_id, 0.0)

    def budget_error(self, asset_id: str) -> MediaError:
        return MediaError(
            Reason.TIME_BUDGET_EXCEEDED,
            f"the file used {self.spent.get(asset_id, 0.0):.1f} s of its "
            f"{self.settings.file_time_budget_s:g} s budget (DATAFLUX_FILE_TIME_BUDGET_S)",
        )

    def over_budget(self, asset_ids: Sequence[str]) -> dict[str, Outcome]:
        """Files that used up their time budget: they fail before their next stage, the rest go on.

        What their earlier stages of this run wrote (segments, vectors, keyframes, thumbnails) is
        removed, so a failed file leaves nothing half-written, whichever stage its budget ran out in;
        the canonical copy stays, as for every failure after `media_file`."""
        over = {a: Outcome(a, self.budget_error(a)) for a in asset_ids if self.remaining_budget(a) <= 0}
        if over:
            self._discard_derived(list(over))
        return over

    def _discard_derived(self, asset_ids: Sequence[str]) -> None:
        from dataflux_pipelines.embeddings.stage import delete_asset_vectors

        self.catalog.replace_segments_many(list(asset_ids), [])
        self.catalog.update_assets({a: {"segment_count": None, "thumbnail_path": None} for a in asset_ids})
        for asset_id in asset_ids:
            delete_asset_vectors(self.catalog.db, asset_id)
            self.store.delete_prefix(layout.derived_key(asset_id, ""))

    # --- status -----------------------------------------------------------------------------
    def mark_processing(self, asset_ids: Sequence[str]) -> None:
        self.catalog.set_status(asset_ids, Status.PROCESSING)

    def mark_done(self, outcomes: dict[str, Outcome]) -> None:
        with self.profile.timed("run", "write_status"):
            self._mark_done(outcomes)

    def _mark_done(self, outcomes: dict[str, Outcome]) -> None:
        updates: dict[str, dict[str, Any]] = {}
        for asset_id, outcome in outcomes.items():
            if outcome.error is None:
                updates[asset_id] = {
                    "status": Status.COMPLETED.value,
                    "reason_code": None,
                    "reason_message": None,
                }
            else:
                updates[asset_id] = {
                    "status": Status.FAILED.value,
                    "reason_code": outcome.error.reason.value,
                    "reason_message": outcome.error.message,
                }
        self.catalog.update_assets(updates)

    # --- stage 1: media_file ---------------------------------------------------------------
    def media_file(self, asset_ids: Sequence[str]) -> dict[str, Outcome]:
        rows = {r["id"]: r for r in self.catalog.get_assets(list(asset_ids))}
        updates: dict[str, dict[str, Any]] = {}

        def one(asset_id: str) -> Outcome:
            row = rows.get(asset_id)
            if row is None:
                error = MediaError(Reason.MISSING_SOURCE, "no catalog row: the file was never registered")
                return Outcome(asset_id, error)
            return self._guard(asset_id, functools.partial(self._media_file_one, row, updates))

        # The types the names claim (the probe decides later): a video's worker loads TransNetV2 now,
        # beside the probes, not at the start of its analysis.
        self.start_decoders(len(asset_ids), (claimed_media_type(r.get("filename")) for r in rows.values()))
        import dataflux_pipelines.media.analyze  # noqa: F401 - here, before the preload thread imports

        self.preload_models(EMBEDDERS)
        out = self.each(asset_ids, one)
        with self.profile.timed("run", "write_catalog"):
            self._commit(out, lambda: self.catalog.update_assets(updates))
        from dataflux_pipelines.graph.store import clear_tombstone

        for asset_id, outcome in out.items():
            landing = rows[asset_id].get("landing_key") if asset_id in rows else None
            if not outcome.ok:
                continue
            try:
                if landing:
                    # The canonical copy and its catalog row are safe; landing is an inbox, so empty it.
                    self.store.delete(landing)
                    self.store.delete(sidecar_key(landing))
                # A re-upload of deleted bytes is stored again: readers must stop hiding it.
                clear_tombstone(self.store, asset_id)
            except ObjectStoreUnavailable as exc:
                # The copy and its catalog row are whole; the file fails with the reason, and a
                # re-analysis once the store answers again resumes it.
                out[asset_id] = Outcome(asset_id, exc, outcome.metadata)
        return out

    def _commit(self, outcomes: dict[str, Outcome], write: Callable[[], None]) -> None:
        """One catalog commit per stage and batch; if it fails, every file of the batch failed."""
        try:
            write()
        except Exception as exc:
            error = MediaError(Reason.STORE_ERROR, f"catalog write failed: {type(exc).__name__}: {exc}")
            for asset_id, outcome in outcomes.items():
                if outcome.ok:
                    outcomes[asset_id] = Outcome(asset_id, error, outcome.metadata)

    def _media_file_one(self, row: dict[str, Any], updates: dict[str, dict[str, Any]]) -> dict[str, Any]:
        from dataflux_pipelines.media.analyze import sniff_and_probe

        asset_id = row["id"]
        with self._source(row) as path:
            size = path.stat().st_size
            if size == 0:
                raise MediaError(Reason.EMPTY_FILE, "the file is empty (0 bytes)")
            started = time.perf_counter()
            sha256 = sha256_file(path)
            hashed = time.perf_counter() - started
            if row.get("file_hash") and sha256 != row["file_hash"]:
                raise MediaError(
                    Reason.CORRUPT_MEDIA, "the landing file changed after it was registered; upload it again"
                )
            started = time.perf_counter()
            with self.decoder() as worker:
                probe: Probe = worker.call(sniff_and_probe, str(path))
            self.profile.add(probe.media_type, "hash", hashed)
            self.profile.add(probe.media_type, "probe", time.perf_counter() - started)
            self.media_types[asset_id] = probe.media_type
            warning = check_claim(row.get("filename"), probe.media_type)
            if warning:
                probe.extra.setdefault("warnings", []).append(warning)
            key = layout.original_key(asset_id, probe.extension)
            with self.profile.timed(probe.media_type, "write_original"):
                if self.store.head(key) is None:
                    self.store.put_file(key, path)
        updates[asset_id] = {
            **stored_fields(probe, sha256, size, key),
            "landing_key": None,
            "reason_code": None,
            "reason_message": None,
        }
        return {
            "media_type": probe.media_type,
            "mime_type": probe.mime_type,
            "size_bytes": size,
            "duration_s": probe.duration,
            "resolution": f"{probe.width}x{probe.height}" if probe.width else None,
            "storage_path": key,
        }

    # --- models, loaded while the decode workers hash, probe and analyse ------------------------
    def preload_models(self, roles: Sequence[str]) -> None:
        """Start loading these models (registry property names) on a background thread, in order.

        The embedders every file goes through are asked for when `media_file` starts, OCR when
        `segments` knows there are pictures (Whisper loads where it is used): decoding runs in worker
        processes meanwhile, so the loads cost little wall time. The main thread has imported the
        decoding code first, and `segment_embeddings` waits for the threads before it imports the
        embedding code, so model code is never imported from two threads at once."""
        wanted = [r for r in roles if r not in self._preload_requested]
        if not wanted:
            return
        self._preload_requested.update(wanted)
        built = self._registry is not None

        def run() -> None:
            started = time.perf_counter()
            registry = self.registry  # the first time, built here (torch imported) beside the decoding
            if not built:
                self.profile.add("run", "registry_background", time.perf_counter() - started)
            with self._lock:
                if self._loads_before is None:
                    self._loads_before = set(registry.load_seconds)
            registry.preload(wanted).join()

        thread = threading.Thread(target=run, name="dataflux-model-preload", daemon=True)
        thread.start()
        self._preloads.append(thread)

    def _await_preload(self) -> None:
        if not self._preloads:
            return
        with self.profile.timed("run", "preload_wait"):
            for thread in self._preloads:
                thread.join()
        self._preloads = []
        # Load time spent on the preload threads, beside other work (not added into the run's total).
        loads, before = self.registry.load_seconds, self._loads_before or set()
        self.profile.add("run", "preload_background", sum(v for k, v in loads.items() if k not in before))
        self._loads_before = set(loads)

    # --- stage 2: segments -----------------------------------------------------------------
    def segments(self, asset_ids: Sequence[str]) -> dict[str, Outcome]:
        rows = {r["id"]: r for r in self.catalog.get_assets(list(asset_ids))}
        for asset_id, row in rows.items():
            self.media_types[asset_id] = row.get("media_type")
        if {row.get("media_type") for row in rows.values()} & {"image", "video"}:
            # Not Whisper: loaded on another thread, CTranslate2 transcribed 7x slower (5.2-5.8 s
            # against 36-40 s for the same 12 s of audio, measured twice each here).
            self.preload_models(["ocr"])
        segment_rows: dict[str, list[dict[str, Any]]] = {}
        updates: dict[str, dict[str, Any]] = {}
        analyses: dict[str, tuple[Path, MediaAnalysis]] = {}
        self.start_decoders(len(asset_ids), (row.get("media_type") for row in rows.values()))
        with contextlib.ExitStack() as sources:
            # Files are analysed in the decode workers while this thread reads the transcripts and
            # on-screen text of those already analysed, in batches of what finished meanwhile (so
            # they still batch across files); sources stay open to the end; then the rows are built.
            failures: dict[str, MediaError] = {}
            read: set[str] = set()

            def read_text(ids: Sequence[str]) -> None:
                """Transcripts and OCR of these analysed files, in one batch."""
                group = {a: analyses[a] for a in ids if a in analyses and a not in read}
                read.update(group)
                if group:
                    started = time.perf_counter()
                    failures.update(self._read_text(group))
                    self._charge_text(group, time.perf_counter() - started)

            out = self.each(
                asset_ids,
                lambda asset_id: self._guard(
                    asset_id,
                    functools.partial(self._analyze_one, rows.get(asset_id), asset_id, analyses, sources),
                ),
                ready=read_text,  # finished files' text is read while the next ones decode
            )
            read_text(list(analyses))
            for asset_id, (_, analysis) in analyses.items():
                if not out[asset_id].ok:
                    continue
                if asset_id in failures:
                    out[asset_id] = Outcome(asset_id, failures[asset_id], out[asset_id].metadata)
                    continue
                with self.profile.timed(rows[asset_id].get("media_type"), "write_objects_and_rows"):
                    built = self._guard(
                        asset_id,
                        functools.partial(
                            self._rows_one, rows[asset_id], asset_id, analysis, segment_rows, updates
                        ),
                    )
                built.metadata["seconds"] = round(
                    built.metadata["seconds"] + out[asset_id].metadata.get("seconds", 0.0), 3
                )
                out[asset_id] = built
        done = [a for a, o in out.items() if o.ok]

        def write() -> None:
            self.catalog.replace_segments_many(done, [r for a in done for r in segment_rows[a]])
            self.catalog.update_assets({a: updates[a] for a in done})

        if done:
            with self.profile.timed("run", "write_segments"):
                self._commit(out, write)
        return out

    def _charge_text(self, analyses: dict[str, tuple[Path, MediaAnalysis]], elapsed: float) -> None:
        """Share the batched transcript/OCR time out: to the profile by model, to each file's budget."""
        shares: dict[str, float] = {}
        for asset_id, (_, analysis) in analyses.items():
            for name in ("transcripts", "screen_text"):
                seconds = float((analysis.summary.get(name) or {}).get("seconds") or 0.0)
                if seconds:
                    model = "model_whisper" if name == "transcripts" else "model_ocr"
                    self.profile.add(analysis.media_type, model, seconds)
                    shares[asset_id] = shares.get(asset_id, 0.0) + seconds
        # Model loads and other shared set-up are the run's cost, not a file's: only each file's own
        # share counts against its budget.
        self.profile.add("run", "text_setup", max(0.0, elapsed - sum(shares.values())))
        for asset_id, part in shares.items():
            self.spent[asset_id] = self.spent.get(asset_id, 0.0) + part

    def _read_text(self, analyses: dict[str, tuple[Path, MediaAnalysis]]) -> dict[str, MediaError]:
        """Transcripts and on-screen text of the batch (`text_stage`); failures are per file."""
        from dataflux_pipelines.text_stage import TextInput, read_text

        items = [TextInput(a, path, analysis) for a, (path, analysis) in analyses.items()]
        try:
            return read_text(
                items, self.registry, warn=self.log, max_segments=self.analysis_options().max_segments
            )
        except Exception as exc:  # a model crash costs the batch its transcripts, not its files
            reason = f"{type(exc).__name__}: {exc}"
            logging.getLogger(__name__).exception("transcripts/OCR failed for %d file(s)", len(items))
            self.log(f"transcripts/OCR failed for {len(items)} file(s): {reason}")
            failures = {}
            for item in items:
                wanted = {
                    "transcripts": item.analysis.transcript_windows,
                    "screen_text": item.analysis.text_frames,
                }
                for key, work in wanted.items():
                    if work:  # recorded as not ok: `text_stage.stale_text_sources` reruns the file later
                        item.analysis.summary.setdefault(key, {"status": "failed", "reason": reason})
                # Drop what was half-read, so no file keeps a partial transcript.
                item.analysis.segments = [
                    d for d in item.analysis.segments if d.segment_type not in ("transcript", "text")
                ]
                if item.analysis.media_type == "document" and not item.analysis.segments:
                    failures[item.asset_id] = MediaError(
                        Reason.NO_TEXT, f"scanned pages could not be read: {reason}"
                    )
            return failures

    def analysis_options(self) -> Any:
        from dataflux_pipelines.media.types import AnalysisOptions

        return AnalysisOptions.from_settings(self.settings)

    def _analyze_one(
        self,
        row: dict[str, Any] | None,
        asset_id: str,
        analyses: dict[str, tuple[Path, MediaAnalysis]],
        sources: contextlib.ExitStack,
    ) -> dict[str, Any]:
        from dataflux_pipelines.media.analyze import analyze_file
        from dataflux_pipelines.models.registry import has_speech_profile

        if row is None or not row.get("storage_path"):
            raise MediaError(Reason.MISSING_SOURCE, "media_file has not stored this asset yet")
        probe = _probe_from_dict(row["metadata"])
        source = self._source({"storage_path": row["storage_path"]})
        path = source.__enter__()
        with self._lock:  # `each` may run this on several threads; the stack closes them all at the end
            sources.push(source.__exit__)
        budget = self.remaining_budget(asset_id)
        if budget <= 0:
            raise self.budget_error(asset_id)
        limit = min(self.settings.decode_timeout_s, budget)
        started = time.perf_counter()
        try:
            with self.decoder() as worker:
                analysis: MediaAnalysis = worker.call(
                    analyze_file, str(path), probe, self.analysis_options(), timeout_s=limit
                )
        except MediaError as exc:
            if exc.reason is Reason.DECODE_TIMEOUT and limit < self.settings.decode_timeout_s:
                self.spent[asset_id] = self.settings.file_time_budget_s
                raise self.budget_error(asset_id) from exc
            raise
        finally:
            self.profile.add(probe.media_type, "analyse", time.perf_counter() - started)
        if has_speech_profile(self.settings):
            with self.profile.timed(probe.media_type, "model_speech"):
                self._transcribe(path, analysis)  # a transformers Whisper folder: speech passages only
        analyses[asset_id] = (path, analysis)
        return {}

    def _rows_one(
        self,
        row: dict[str, Any],
        asset_id: str,
        analysis: MediaAnalysis,
        segment_rows: dict[str, list[dict[str, Any]]],
        updates: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        rows = []
        for draft in analysis.segments:
            segment_id = segment_id_for(asset_id, draft.segment_type, draft.sequence_number)
            keyframe = thumb = None
            if draft.keyframe_jpeg:
                keyframe = layout.keyframe_key(asset_id, draft.sequence_number)
                self.store.put_bytes(keyframe, draft.keyframe_jpeg)
            if draft.thumbnail_jpeg:
                thumb = layout.segment_thumbnail_key(asset_id, draft.sequence_number)
                self.store.put_bytes(thumb, draft.thumbnail_jpeg)
            for k, jpeg in enumerate(draft.sample_frames_jpeg):
                self.store.put_bytes(layout.sample_frame_key(asset_id, draft.sequence_number, k), jpeg)
            record = SegmentRecord(
                id=segment_id,
                asset_id=asset_id,
                segment_type=draft.segment_type,
                sequence_number=draft.sequence_number,
                media_type=row["media_type"],
                mime_type=row["mime_type"],
                filename=row["filename"],
                collection_id=row.get("collection_id"),
                start_time=draft.start_time,
                end_time=draft.end_time,
                duration=draft.duration,
                start_frame=draft.start_frame,
                end_frame=draft.end_frame,
                page=draft.page,
                char_start=draft.char_start,
                char_end=draft.char_end,
                confidence_score=draft.confidence,
                text=draft.text,
                transcript=draft.transcript,
                language=draft.language,
                words=draft.words or [],
                source_model=draft.source_model,
                context=row.get("context"),
                search_text=" ".join(
                    t for t in (draft.text, draft.transcript, row.get("context"), row["filename"]) if t
                ),
                keyframe_path=keyframe,
                thumbnail_path=thumb,
                visual_features=draft.visual_features,
                style_features=draft.style_features,
                technical_features=draft.technical_features,
                audio_features=draft.audio_features,
                semantic_features=draft.semantic_features,
            )
            rows.append(dataclasses.asdict(record))
        asset_thumb = None
        if analysis.thumbnail_jpeg:
            asset_thumb = layout.asset_thumbnail_key(asset_id)
            self.store.put_bytes(asset_thumb, analysis.thumbnail_jpeg)
        elif rows and rows[0]["thumbnail_path"]:
            asset_thumb = rows[0]["thumbnail_path"]
        segment_rows[asset_id] = rows
        confidences = [r["confidence_score"] for r in rows if r["confidence_score"] is not None]
        updates[asset_id] = {
            "models": _text_source_models(row.get("models"), analysis.summary),
            "segment_count": len(rows),
            "summary": {**analysis.summary, "transitions": analysis.transitions},
            "thumbnail_path": asset_thumb,
            "confidence_score": (sum(confidences) / len(confidences)) if confidences else None,
        }
        kinds: dict[str, int] = {}
        for r in rows:
            kinds[r["segment_type"]] = kinds.get(r["segment_type"], 0) + 1
        return {"segment_count": len(rows), "segment_types": kinds, **_summary_metadata(analysis.summary)}

    def _transcribe(self, path: Path, analysis: MediaAnalysis) -> None:
        """Fill transcripts of speech-like passages with the configured speech model."""
        from dataflux_pipelines.media.audio import decode_audio_span

        speech = [
            d
            for d in analysis.segments
            if d.audio_features.get("class") == "speech"
            and d.start_time is not None
            and d.end_time is not None
        ]
        if not speech:
            return
        rate = 16000
        for draft in speech:
            assert draft.start_time is not None and draft.end_time is not None
            # One passage decoded at a time (by seeking), not the whole track.
            span = decode_audio_span(str(path), draft.start_time, draft.end_time, rate)
            if span is not None and len(span) > rate // 4:
                draft.transcript = self.registry.transcribe(span, rate)

    # --- stage 3: segment_embeddings -----------------------------------------------------
    def segment_embeddings(self, asset_ids: Sequence[str]) -> dict[str, Outcome]:
        self._await_preload()  # before the import below: one thread importing model code at a time
        from dataflux_pipelines.embeddings.stage import embed_segments

        release_heap()  # what the segments stage freed (audio, frames, OCR buffers) leaves the process
        started = time.perf_counter()
        try:
            results = embed_segments(self.catalog.db, self.registry, list(asset_ids), self.store.get_bytes)
        except Exception as exc:  # one batch: a failure here is every file's failure, with the reason
            error = MediaError(Reason.INTERNAL_ERROR, f"embedding failed: {type(exc).__name__}: {exc}")
            return {a: Outcome(a, error) for a in asset_ids}
        finally:
            release_heap()  # and what the keyframe batches and model calls freed
        elapsed = round(time.perf_counter() - started, 3)
        out = {}
        for asset_id in asset_ids:
            result = results.get(asset_id)
            if result is None:
                out[asset_id] = Outcome(asset_id, MediaError(Reason.INTERNAL_ERROR, "no embedding result"))
                continue
            meta = result.metadata()
            meta.pop("error", None)
            kind = result.media_type or self.media_types.get(asset_id)
            for phase in ("load", "decode", "model", "write"):
                self.profile.add(kind, f"embed_{phase}", float(meta.get(f"{phase}_seconds") or 0.0))
            self.spent[asset_id] = self.spent.get(asset_id, 0.0) + sum(
                float(meta.get(f"{p}_seconds") or 0.0) for p in ("decode", "model", "write")
            )
            if result.error:
                error = MediaError(result.error["reason_code"], result.error["message"])
                out[asset_id] = Outcome(asset_id, error, meta)
            else:
                meta["batch_seconds"] = elapsed
                out[asset_id] = Outcome(asset_id, None, meta)
        models = {a: o.metadata.get("models") for a, o in out.items() if o.ok and o.metadata.get("models")}
        if models:
            # Keep what the segments stage recorded (the Whisper / OCR versions) beside the embedders.
            before = {r["id"]: r.get("models") or {} for r in self.catalog.get_assets(list(models))}
            merged = {a: {**_as_dict(before.get(a)), **_as_dict(m)} for a, m in models.items()}
            self.catalog.update_assets({a: {"models": m} for a, m in merged.items()})
        return out

    # --- stage 4: graph contributions ----------------------------------------------------
    def graph_contributions(self, asset_ids: Sequence[str]) -> dict[str, Outcome]:
        from dataflux_pipelines.graph.contrib import BatchReads, graph_contribution

        started = time.perf_counter()
        try:
            batch: BatchReads | None = BatchReads.read(self.catalog, asset_ids)
        except Exception:  # each file then reads its own rows, and fails (or not) on its own
            logging.getLogger(__name__).warning(
                "reading the batch's rows for its graph contributions failed", exc_info=True
            )
            batch = None
        shared = (time.perf_counter() - started) / max(len(asset_ids), 1)
        out = {}
        for a in asset_ids:
            with self.profile.timed(self.media_types.get(a), "graph"):
                out[a] = self._guard(
                    a,
                    functools.partial(
                        graph_contribution, self.settings, self.catalog, a, store=self.store, batch=batch
                    ),
                )
            self.profile.add(self.media_types.get(a), "graph", shared)
        return out


def _summary_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("shot_count", "mean_shot_length", "median_shot_length", "page_count", "speech_ratio")
    out = {k: summary[k] for k in keep if k in summary}
    for name in ("transcripts", "screen_text"):
        status = summary.get(name)
        if status:
            out[name] = status.get("status")
            if status.get("reason"):
                out[f"{name}_reason"] = status["reason"]
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if value else {}


def _text_source_models(current: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """The asset's `models` with the Whisper / OCR versions that read its text (the staleness key
    `text_stage.stale_text_sources` compares); a model that was unavailable is recorded as None."""
    models = dict(_as_dict(current))
    for name, key in (("transcripts", "whisper"), ("screen_text", "ocr")):
        status = summary.get(name)
        if status:
            models[key] = status.get("model") if status.get("status") == "ok" else None
        else:
            models.pop(key, None)  # nothing to read this time (e.g. no sound, no scanned page)
    return models
