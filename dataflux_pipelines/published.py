"""Graph and analytics snapshots published through the object store, for readers on other machines.

The writer uploads version N under `published/{kind}/v{N:06d}…` and only then overwrites the small
pointer object `published/{kind}/CURRENT.json`, so a reader never sees a pointer to a half-uploaded
snapshot. Readers poll the pointer, download into `$DATAFLUX_HOME/cache/{kind}/snapshots/` through a
temp name and a rename, verify the SHA-256 and move their local `current` symlink. With a local
(`file://`) object store nothing is published here: the local pointer already is the publication.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dataflux_pipelines import layout
from dataflux_pipelines.objectstore import ObjectInfo, ObjectMissing, ObjectStore
from dataflux_pipelines.settings import Settings

PREFIX = layout.PUBLISHED_PREFIX
POINTER = layout.PUBLISHED_POINTER
CACHE = "cache"
SNAPSHOTS = "snapshots"
CURRENT = "current"
GRAPH = "graph"
ANALYTICS = "analytics"
_CHUNK = 1024 * 1024
# `v000007.kuzu` (one file) or `v000007` (a folder); `.part…` downloads never match.
_VERSION_RE = re.compile(r"^v(\d{6,})(?:\.[A-Za-z0-9]+)?$")
_NAME_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

log = logging.getLogger(__name__)


class PublishedError(Exception):
    """A publication that cannot be read or trusted; `code` is stable, the message says what failed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class PublishedFile:
    name: str  # path inside the version folder, e.g. `assets/assets.parquet`
    sha256: str
    size: int


@dataclass(frozen=True)
class Pointer:
    """What `CURRENT.json` says: the live version, its object (or folder prefix), checksum and size."""

    kind: str
    version: int
    key: str  # the snapshot object, or the version folder's prefix ending in "/"
    sha256: str  # of the file, or of the folder's file list (see `folder_digest`)
    size: int
    published_at: str
    files: tuple[PublishedFile, ...] = ()

    @property
    def is_folder(self) -> bool:
        return self.key.endswith("/")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "key": self.key,
            "sha256": self.sha256,
            "size": self.size,
            "published_at": self.published_at,
        }
        if self.is_folder:
            out["files"] = [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in self.files]
        return out

    @classmethod
    def from_json(cls, kind: str, data: Any) -> Pointer:
        """A pointer read from the store; anything malformed is refused before it names a download."""
        base = f"{PREFIX}/{kind}/"
        try:
            version, key, size = data["version"], data["key"], data["size"]
            sha, published_at = data["sha256"], data["published_at"]
            raw_files = data.get("files") or []
            if not (isinstance(version, int) and isinstance(size, int) and isinstance(key, str)):
                raise TypeError("version and size must be integers, key a string")
            if not key.startswith(f"{base}v{version:06d}"):
                raise ValueError(f"key {key!r} is not under {base} for version {version}")
            files = tuple(
                PublishedFile(_check_name(f["name"]), str(f["sha256"]), int(f["size"])) for f in raw_files
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PublishedError(
                "published_pointer_invalid", f"{base}{POINTER} is not a valid pointer: {exc}"
            ) from exc
        return cls(kind, version, key, str(sha), size, str(published_at), files)


def _check_name(name: Any) -> str:
    # Names become local paths under the cache: no absolute paths, no `..`, nothing hidden.
    if not isinstance(name, str) or not all(_NAME_PART_RE.match(p) for p in name.split("/")):
        raise ValueError(f"file name {name!r} is not a plain relative path")
    return name


def is_remote(settings: Settings) -> bool:
    """Whether snapshots must travel through the object store (it is S3, not a local folder)."""
    return settings.object_store_url.startswith("s3://")


def cache_dir(settings: Settings, kind: str) -> Path:
    """Where a reader keeps the snapshots it pulled: `$DATAFLUX_HOME/cache/{kind}`."""
    return settings.home / CACHE / kind


def pointer_key(kind: str) -> str:
    return f"{PREFIX}/{kind}/{POINTER}"


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a file, read in chunks."""
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def folder_digest(files: tuple[PublishedFile, ...] | list[PublishedFile]) -> str:
    """One checksum for a set of files: the SHA-256 of their sorted names, checksums and sizes."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.sha256}\0{f.size}\n".encode())
    return h.hexdigest()


# --- writer --------------------------------------------------------------------------------


def read_pointer(store: ObjectStore, kind: str) -> Pointer | None:
    """The published pointer, or None before the first publication."""
    try:
        raw = store.get_bytes(pointer_key(kind))
    except ObjectMissing:
        return None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PublishedError("published_pointer_invalid", f"{pointer_key(kind)} is not JSON: {exc}") from exc
    return Pointer.from_json(kind, data)


def published_versions(store: ObjectStore, kind: str) -> dict[int, list[ObjectInfo]]:
    """Every version present under `published/{kind}/`, with its objects."""
    base = f"{PREFIX}/{kind}/"
    out: dict[int, list[ObjectInfo]] = {}
    for info in store.list(base):
        match = _VERSION_RE.match(info.key[len(base) :].split("/", 1)[0])
        if match:
            out.setdefault(int(match.group(1)), []).append(info)
    return out


def next_version(store: ObjectStore, kind: str) -> int:
    """One above every version the store has seen, so a version number always names one content."""
    pointer = read_pointer(store, kind)
    known = [*published_versions(store, kind), pointer.version if pointer else 0]
    return max(known) + 1


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _set_pointer(store: ObjectStore, pointer: Pointer, keep: int, grace_s: float) -> Pointer:
    # Written after every byte of the snapshot: the only object readers look at first.
    store.put_bytes(pointer_key(pointer.kind), json.dumps(pointer.to_json(), indent=2).encode())
    collect_published(store, pointer.kind, keep=keep, grace_s=grace_s)
    return pointer


def publish_file(
    store: ObjectStore,
    kind: str,
    version: int,
    path: Path,
    *,
    suffix: str,
    keep: int = 3,
    grace_s: float = 600.0,
) -> Pointer:
    """Upload one snapshot file as version `version`, then point `CURRENT.json` at it (one writer at a time)."""
    key = f"{PREFIX}/{kind}/v{version:06d}{suffix}"
    digest, size = file_digest(path)
    store.put_file(key, path, metadata={"sha256": digest})
    return _set_pointer(store, Pointer(kind, version, key, digest, size, _now()), keep, grace_s)


def publish_folder(
    store: ObjectStore, kind: str, version: int, folder: Path, *, keep: int = 3, grace_s: float = 600.0
) -> Pointer:
    """Upload every file of a folder as version `version`, then point `CURRENT.json` at it."""
    prefix = f"{PREFIX}/{kind}/v{version:06d}/"
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = _check_name(path.relative_to(folder).as_posix())
        digest, size = file_digest(path)
        store.put_file(prefix + name, path, metadata={"sha256": digest})
        files.append(PublishedFile(name, digest, size))
    if not files:
        raise PublishedError("published_empty", f"{folder} holds no files to publish as {kind} v{version}")
    pointer = Pointer(
        kind, version, prefix, folder_digest(files), sum(f.size for f in files), _now(), tuple(files)
    )
    return _set_pointer(store, pointer, keep, grace_s)


def collect_published(store: ObjectStore, kind: str, *, keep: int = 3, grace_s: float = 600.0) -> list[int]:
    """Delete old published versions: never the pointer's, the newest `keep`, or any younger than `grace_s`.

    A reader whose version is deleted mid-download reads the pointer again (see `fetch_current`).
    """
    pointer = read_pointer(store, kind)
    versions = published_versions(store, kind)
    ordered = sorted(versions)
    protected = set(ordered[-keep:]) if keep > 0 else set()
    if pointer is not None:
        protected.add(pointer.version)
    now = dt.datetime.now(dt.UTC)
    removed = []
    base = f"{PREFIX}/{kind}/"
    for version in ordered:
        if version in protected:
            continue
        infos = versions[version]
        if (now - max(i.modified for i in infos)).total_seconds() < grace_s:
            continue
        if any("/" in i.key[len(base) :] for i in infos):
            store.delete_prefix(f"{base}v{version:06d}/")
        else:
            for info in infos:
                store.delete(info.key)
        removed.append(version)
    return removed


# --- readers -------------------------------------------------------------------------------


def _fetch_object(store: ObjectStore, key: str, dest: Path, sha256: str, size: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, n = hashlib.sha256(), 0
    with store.open_read(key) as stream, dest.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
            n += len(chunk)
    if n != size or h.hexdigest() != sha256:
        raise PublishedError(
            "published_checksum_mismatch",
            f"{key}: downloaded {n} bytes with SHA-256 {h.hexdigest()[:16]}…, the pointer promises "
            f"{size} bytes with {sha256[:16]}…; the snapshot was not used",
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def download(store: ObjectStore, pointer: Pointer, target: Path) -> Path:
    """Download and verify a published snapshot into `target` (a file or a folder) via a temp name + rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.part{os.getpid()}-{threading.get_ident()}")
    _remove(part)
    try:
        if pointer.is_folder:
            if folder_digest(pointer.files) != pointer.sha256:
                raise PublishedError(
                    "published_checksum_mismatch",
                    f"{pointer_key(pointer.kind)}: the file list of v{pointer.version} does not match its checksum",
                )
            part.mkdir()
            for f in pointer.files:
                _fetch_object(store, pointer.key + f.name, part / f.name, f.sha256, f.size)
        else:
            _fetch_object(store, pointer.key, part, pointer.sha256, pointer.size)
        try:
            os.replace(part, target)
        except OSError:
            # Another process on this machine renamed the same verified folder in first.
            if not target.is_dir():
                raise
    finally:
        _remove(part)
    return target


def fetch_current(store: ObjectStore, kind: str, target_for: Callable[[Pointer], Path]) -> Pointer | None:
    """Download the version the pointer names into `target_for(pointer)` unless it is there already.

    A version collected between reading the pointer and downloading it means the pointer has moved
    on: read it again (a few times, then say so).
    """
    for _attempt in range(3):
        pointer = read_pointer(store, kind)
        if pointer is None:
            return None
        target = target_for(pointer)
        if target.exists():
            return pointer  # only ever renamed into place after verification
        try:
            download(store, pointer, target)
        except ObjectMissing:
            continue
        return pointer
    raise PublishedError(
        "published_snapshot_missing",
        f"{pointer_key(kind)} kept naming {kind} snapshots that were already deleted; is a second writer "
        "collecting them?",
    )


def current_target(cache: Path) -> Path | None:
    """The cached snapshot the local `current` symlink names, or None."""
    try:
        target = os.readlink(cache / CURRENT)
    except FileNotFoundError:
        return None
    return (cache / target).resolve()


def set_current(root: Path, target: Path) -> None:
    """Point `root/current` at `target` atomically (a relative symlink swapped in with a rename)."""
    link = root / CURRENT
    relative = os.path.relpath(target, root)
    try:
        if os.readlink(link) == relative:
            return
    except FileNotFoundError:
        pass
    tmp = root / f"{CURRENT}.tmp{os.getpid()}-{threading.get_ident()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(relative, tmp)
    os.replace(tmp, link)


def collect_cache(cache: Path, *, keep: int = 2, grace_s: float = 600.0) -> list[Path]:
    """Delete old cached snapshots: never the current one, the newest `keep`, or any younger than `grace_s`.

    An open Kuzu file or Parquet file lives on after its name is removed; the grace period covers a
    request that resolved the pointer but has not opened the files yet.
    """
    folder = cache / SNAPSHOTS
    if not folder.is_dir():
        return []
    current = current_target(cache)
    entries = []
    for entry in folder.iterdir():
        match = _VERSION_RE.match(entry.name)
        if match:
            entries.append((int(match.group(1)), entry))
    entries.sort()
    protected = {p for _, p in entries[-keep:]} if keep > 0 else set()
    now = time.time()
    removed = []
    for _, path in entries:
        if path in protected or path == current:
            continue
        try:
            if now - path.stat().st_mtime < grace_s:
                continue
        except FileNotFoundError:
            continue
        _remove(path)
        removed.append(path)
    for stale in folder.glob("*.part*"):
        try:
            if now - stale.stat().st_mtime > max(grace_s, 3600.0):
                _remove(stale)  # left by a reader killed mid-download
        except FileNotFoundError:
            continue
    return removed


def pull(
    store: ObjectStore, kind: str, cache: Path, *, suffix: str, keep: int = 2, grace_s: float = 600.0
) -> Pointer | None:
    """Bring a local cache up to the published pointer: download a new version, verify it, switch `current`."""
    pointer = fetch_current(store, kind, lambda p: cache / SNAPSHOTS / f"v{p.version:06d}{suffix}")
    if pointer is not None:
        set_current(cache, cache / SNAPSHOTS / f"v{pointer.version:06d}{suffix}")
        collect_cache(cache, keep=keep, grace_s=grace_s)
    return pointer


_PULL_ERRORS = (PublishedError, OSError, BotoCoreError, ClientError)


class SnapshotFollower:
    """Keeps a reader's cache at the published pointer, checking the object store at most every `poll_s`.

    Thread-safe. While a snapshot is cached, a failed check is logged and the cached one keeps serving;
    with nothing cached, the failure is raised as a PublishedError.
    """

    def __init__(
        self,
        store: ObjectStore,
        kind: str,
        cache: Path,
        *,
        suffix: str,
        poll_s: float = 5.0,
        keep: int = 2,
        grace_s: float = 600.0,
    ) -> None:
        self.store = store
        self.kind = kind
        self.cache = Path(cache)
        self.suffix = suffix
        self.poll_s = poll_s
        self.keep = keep
        self.grace_s = grace_s
        self.pointer: Pointer | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._next_check = 0.0

    def sync(self) -> None:
        """Check the pointer if `poll_s` has passed since the last check; pull a new version if there is one."""
        if time.monotonic() < self._next_check:
            return
        cached = current_target(self.cache) is not None
        # Requests that find a cached snapshot do not wait for another thread's download.
        if not self._lock.acquire(blocking=not cached):
            return
        try:
            if time.monotonic() < self._next_check:
                return
            try:
                self.pointer = pull(
                    self.store,
                    self.kind,
                    self.cache,
                    suffix=self.suffix,
                    keep=self.keep,
                    grace_s=self.grace_s,
                )
                self.last_error = None
            except _PULL_ERRORS as exc:
                self.last_error = str(exc)
                if not cached:
                    if isinstance(exc, PublishedError):
                        raise
                    raise PublishedError(
                        "published_unreachable",
                        f"could not pull the published {self.kind} from {self.store.url}: {exc}",
                    ) from exc
                log.warning(
                    "could not pull the published %s from %s, still serving %s: %s",
                    self.kind,
                    self.store.url,
                    current_target(self.cache),
                    exc,
                )
            finally:
                self._next_check = time.monotonic() + self.poll_s
        finally:
            self._lock.release()
