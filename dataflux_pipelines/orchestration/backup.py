"""Backups of one DataFlux installation and their restore into an empty home.

A backup folder holds `manifest.json` (written last: a folder without it is incomplete) and:
`lance/` (every table folder, with the version that was current when the backup began),
`graph/` (the published Kuzu snapshot, plus the contribution and tombstone objects under
`graph/contrib/` and `control/tombstones/` of the object store), `analytics/facts/`,
`events/`, `objects.jsonl` (keys, sizes, etags) plus `objects/` with `--with-objects`, and
`dagster/` (SQLite files copied with the sqlite3 backup API, or a `pg_dump` custom-format dump).

With an S3 object store the graph snapshot and the analytics facts are the versions the store's
`published/*/CURRENT.json` pointers name (downloaded and checksum-verified: the writer's home need
not be on the machine taking the backup); `published/` is left out of the objects manifest, and a
restore publishes both again into a target store that has no pointer yet. Graph contributions and
tombstones are always copied into `graph/` (the next publication needs them), so they are left out
of the objects manifest too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dataflux_pipelines import __version__
from dataflux_pipelines.graph.store import (
    CONTRIB,
    CONTRIB_PREFIX,
    POINTER,
    SNAPSHOTS,
    TOMBSTONE_PREFIX,
    TOMBSTONES,
    live_snapshot,
)
from dataflux_pipelines.orchestration.partitions import MEDIA_PARTITIONS
from dataflux_pipelines.published import (
    ANALYTICS,
    GRAPH,
    fetch_current,
    is_remote,
    next_version,
    publish_file,
    publish_folder,
    read_pointer,
)
from dataflux_pipelines.published import PREFIX as PUBLISHED_PREFIX
from dataflux_pipelines.settings import Settings

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OBJECTS_MANIFEST = "objects.jsonl"
PG_DUMP = "dagster.pgdump"
NOT_COVERED = (
    "models and the Hugging Face cache (re-download or copy them; nothing in DataFlux depends on their files)",
    "the virtualenv, the checkout and deployment files (.env holds secrets: keep it in your secret store)",
    "original objects, thumbnails and keyframes unless --with-objects (only their manifest is kept)",
    "runs in flight: their catalog writes after the recorded Lance versions are not in the backup; "
    "rerun those partitions after a restore",
    "scratch files, demo samples, the inbox and unpublished graph snapshots",
    "Dagster step logs kept in S3 (compute_logs on S3); local step logs are included",
)
Log = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; `code` is stable, the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


# --- small file helpers ----------------------------------------------------------------------


def _tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under a folder."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                size += (Path(dirpath) / name).stat().st_size
                files += 1
    return files, size


def _copy_tree(src: Path, dst: Path, *, skip: Callable[[Path], bool] = lambda p: False) -> tuple[int, int]:
    """Copy a folder that writers may be changing; files that vanish mid-copy are left out."""
    files = size = 0
    if not src.is_dir():
        return 0, 0
    for dirpath, dirnames, names in os.walk(src):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not skip(here / d))
        for name in sorted(names):
            path = here / name
            if skip(path) or path.is_symlink():
                continue
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(path, target)
            except FileNotFoundError:
                continue  # removed by its writer (a temp file, a collected old version)
            files += 1
            size += target.stat().st_size
    return files, size


def _is_empty_dir(path: Path, allowed: frozenset[str] = frozenset()) -> bool:
    return not path.exists() or all(entry.name in allowed for entry in path.iterdir())


# --- LanceDB -------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"


def s3_location(url: str) -> S3Location:
    parsed = urlparse(url)
    prefix = parsed.path.strip("/")
    return S3Location(parsed.netloc, f"{prefix}/" if prefix else "")


def _s3_keys(client: Any, loc: S3Location, sub: str = "") -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.prefix + sub):
        yield from page.get("Contents", [])


def _lance_connect(settings: Settings, uri: str | None = None) -> Any:
    """A writer's connection (always the latest version) to the configured or another LanceDB location."""
    from dataflux_pipelines.catalog import connect

    return connect(dataclasses.replace(settings, lance_uri=uri) if uri else settings)


def _lance_tables(db: Any) -> list[str]:
    from dataflux_pipelines.catalog import table_names

    return sorted(table_names(db))


def _copy_lance_table_out(settings: Settings, name: str, dest: Path) -> tuple[int, int]:
    folder = f"{name}.lance"
    if not settings.lance_uri.startswith("s3://"):
        return _copy_tree(Path(settings.lance_uri) / folder, dest / folder)
    from dataflux_pipelines.objectstore import s3_client

    client, loc = s3_client(settings), s3_location(settings.lance_uri)
    files = size = 0
    for obj in _s3_keys(client, loc, folder + "/"):
        target = dest / obj["Key"][len(loc.prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(loc.bucket, obj["Key"], str(target))
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                continue  # removed by its writer since the listing
            raise
        files += 1
        size += target.stat().st_size
    return files, size


def _copy_lance_table_in(settings: Settings, name: str, src: Path) -> None:
    folder = src / f"{name}.lance"
    if not settings.lance_uri.startswith("s3://"):
        _copy_tree(folder, Path(settings.lance_uri) / folder.name)
        return
    from dataflux_pipelines.objectstore import s3_client

    client, loc = s3_client(settings), s3_location(settings.lance_uri)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), loc.bucket, loc.prefix + path.relative_to(src).as_posix())


def _lance_target_is_empty(settings: Settings) -> bool:
    if not settings.lance_uri.startswith("s3://"):
        return _is_empty_dir(Path(settings.lance_uri))
    from dataflux_pipelines.objectstore import s3_client

    return next(_s3_keys(s3_client(settings), s3_location(settings.lance_uri)), None) is None


# --- Dagster instance ------------------------------------------------------------------------


@dataclass(frozen=True)
class DagsterStorage:
    """Where a DAGSTER_HOME's dagster.yaml keeps runs and events (read without connecting)."""

    kind: str  # "sqlite" or "postgres"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None


def dagster_storage(dagster_home: Path) -> DagsterStorage:
    """The storage kind of an instance folder; Postgres settings come from its config and environment."""
    import importlib

    import yaml
    from dagster._config import process_config
    from dagster._core.instance.ref import InstanceRef

    if not (dagster_home / "dagster.yaml").exists():
        return DagsterStorage("sqlite")
    ref = InstanceRef.from_dir(str(dagster_home))
    data = ref.run_storage_data
    if data is None:
        # Dagster leaves it unset for `storage: sqlite` with base_dir from an env var: files outside the folder.
        raise BackupError(
            "unsupported_dagster_storage",
            f"{dagster_home}/dagster.yaml sets the SQLite base_dir from an environment variable; "
            "backups cover SQLite storage inside the instance folder and PostgreSQL storage",
        )
    if not data.class_name.startswith("Postgres"):
        if "Sqlite" not in data.class_name:
            raise BackupError(
                "unsupported_dagster_storage",
                f"{dagster_home}/dagster.yaml uses {data.module_name}.{data.class_name}; "
                "backups cover SQLite and PostgreSQL storage",
            )
        return DagsterStorage("sqlite")
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    processed = process_config(klass.config_type(), yaml.safe_load(data.config_yaml))
    if not processed.success or processed.value is None:
        raise BackupError(
            "invalid_dagster_config",
            f"{dagster_home}/dagster.yaml: {'; '.join(e.message for e in processed.errors or [])}",
        )
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy.engine import make_url

    url = make_url(pg_url_from_config(processed.value))
    return DagsterStorage(
        "postgres", url.host, int(url.port or 5432), url.username, url.password or "", url.database
    )


def postgres_tool(name: str) -> Path:
    """A PostgreSQL client program (pg_dump, pg_restore): pg_config's bindir, the newest Debian one, PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out) / name)

    def version(path: str) -> int:
        folder = Path(path).parent.name
        return int(folder) if folder.isdigit() else -1

    candidates += [
        Path(p) / name for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise BackupError(
        "postgres_client_missing",
        f"{name} not found: install the PostgreSQL client programs (`apt-get install postgresql-client`) "
        "of the same or a newer major version than the server",
    )


def _pg_command(storage: DagsterStorage) -> tuple[list[str], dict[str, str]]:
    args = [
        "-h",
        str(storage.host),
        "-p",
        str(storage.port),
        "-U",
        str(storage.user),
        "-d",
        str(storage.database),
    ]
    env = dict(os.environ, PGPASSWORD=storage.password or "", PGCONNECT_TIMEOUT="10")
    return args, env


def _run_pg(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BackupError(
            f"{what}_failed", f"{Path(cmd[0]).name} exited with {proc.returncode}: {' '.join(detail)}"
        )


def _postgres_table_count(storage: DagsterStorage) -> int:
    import psycopg2

    conn = psycopg2.connect(
        host=storage.host,
        port=storage.port,
        user=storage.user,
        password=storage.password,
        dbname=storage.database,
        connect_timeout=10,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _instance_counts(dagster_home: Path) -> dict[str, int]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return {
            "runs": instance.get_runs_count(),
            "media_partitions": len(instance.get_dynamic_partitions(MEDIA_PARTITIONS)),
        }


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API, not a file copy)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def _backup_dagster(settings: Settings, dest: Path) -> dict[str, Any]:
    home = settings.dagster_home
    if not (home / "dagster.yaml").is_file():
        raise BackupError(
            "dagster_home_missing",
            f"{home}/dagster.yaml not found: set DAGSTER_HOME to the instance folder of this installation",
        )
    storage = dagster_storage(home)
    out = dest / "dagster"
    files_dir = out / "files"
    out.mkdir(parents=True)
    counts = _instance_counts(home)
    started = time.perf_counter()
    if storage.kind == "sqlite":
        databases = 0
        for dirpath, _, names in os.walk(home):
            for name in sorted(names):
                path = Path(dirpath) / name
                rel = path.relative_to(home)
                if name.endswith(("-wal", "-shm", "-journal")):
                    continue  # the backup API already folded their committed pages in
                if name.endswith(".db"):
                    _sqlite_copy(path, files_dir / rel)
                    databases += 1
                else:
                    (files_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(FileNotFoundError):
                        shutil.copy2(path, files_dir / rel)
        detail: dict[str, Any] = {"databases": databases}
    else:
        if (home / "dagster.yaml").exists():
            files_dir.mkdir()
            shutil.copy2(home / "dagster.yaml", files_dir / "dagster.yaml")
        tool = postgres_tool("pg_dump")
        args, env = _pg_command(storage)
        _run_pg(
            [str(tool), *args, "--format=custom", "--no-owner", "--no-privileges", "-f", str(out / PG_DUMP)],
            env,
            "pg_dump",
        )
        detail = {"database": storage.database, "host": storage.host, "pg_dump": str(tool)}
    files, size = _tree_size(out)
    return {
        "storage": storage.kind,
        **detail,
        **counts,
        "files": files,
        "bytes": size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _restore_dagster(settings: Settings, src: Path, section: dict[str, Any]) -> None:
    home = settings.dagster_home
    target = dagster_storage(home)
    if target.kind != section["storage"]:
        raise BackupError(
            "dagster_storage_mismatch",
            f"the backup holds a {section['storage']} Dagster instance but {home}/dagster.yaml uses "
            f"{target.kind}; restore into a DAGSTER_HOME configured like the backed-up one",
        )
    files_dir = src / "dagster" / "files"
    if target.kind == "sqlite":
        home.mkdir(parents=True, exist_ok=True)
        keep_config = (home / "dagster.yaml").exists()
        for path in sorted(p for p in files_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(files_dir)
            if keep_config and rel.as_posix() == "dagster.yaml":
                continue  # the target's own config wins; it was checked to be SQLite too
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, home / rel)
        return
    tool = postgres_tool("pg_restore")
    args, env = _pg_command(target)
    _run_pg(
        [
            str(tool),
            *args,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            str(src / "dagster" / PG_DUMP),
        ],
        env,
        "pg_restore",
    )


# --- objects -------------------------------------------------------------------------------


def _copy_objects_out(settings: Settings, prefix: str, dst: Path) -> tuple[int, int]:
    """Copy the objects under `prefix` into a folder, always (the graph's next publication needs them)."""
    from dataflux_pipelines.objectstore import ObjectMissing, open_object_store

    store = open_object_store(settings)
    files = size = 0
    for info in store.list(prefix):
        target = dst / info.key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with store.open_read(info.key) as stream, target.open("wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
        except ObjectMissing:
            target.unlink(missing_ok=True)  # removed by its writer (a publication, a re-upload)
            continue
        files += 1
        size += target.stat().st_size
    return files, size


def _copy_objects_in(settings: Settings, src: Path, prefix: str) -> None:
    """Put the files of a backup folder back as objects under `prefix`."""
    from dataflux_pipelines.objectstore import open_object_store

    if not src.is_dir():
        return
    store = open_object_store(settings)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        store.put_file(prefix + path.relative_to(src).as_posix(), path)


def _backup_objects(settings: Settings, dest: Path, with_objects: bool) -> dict[str, Any]:
    from dataflux_pipelines.objectstore import open_object_store

    store = open_object_store(settings)
    started = time.perf_counter()
    count = size = copied = 0
    with (dest / OBJECTS_MANIFEST).open("w", encoding="utf-8") as manifest:
        for info in store.list(""):
            if info.key.startswith((".doctor/", f"{PUBLISHED_PREFIX}/", CONTRIB_PREFIX, TOMBSTONE_PREFIX)):
                continue  # doctor probes; published snapshots and graph state are in graph/ and analytics/
            entry: dict[str, Any] = {"key": info.key, "size": info.size, "etag": info.etag}
            if with_objects:
                head = store.head(info.key)
                if head is None:
                    continue  # deleted since the listing
                entry["metadata"] = head.metadata
                target = dest / "objects" / info.key
                target.parent.mkdir(parents=True, exist_ok=True)
                from dataflux_pipelines.objectstore import ObjectMissing

                try:
                    with store.open_read(info.key) as stream, target.open("wb") as out:
                        shutil.copyfileobj(stream, out, 1024 * 1024)
                except ObjectMissing:
                    target.unlink(missing_ok=True)
                    continue
                entry["size"] = target.stat().st_size
                copied += 1
            manifest.write(json.dumps(entry, sort_keys=True) + "\n")
            count += 1
            size += entry["size"]
    return {
        "store": settings.object_store_url,
        "count": count,
        "bytes": size,
        "included": with_objects,
        "copied": copied,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _restore_objects(settings: Settings, src: Path, section: dict[str, Any]) -> dict[str, Any]:
    from dataflux_pipelines.objectstore import open_object_store

    store = open_object_store(settings)
    restored = present = 0
    missing: list[str] = []
    for line in (src / OBJECTS_MANIFEST).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        existing = store.head(entry["key"])
        if existing is not None:
            if existing.size != entry["size"]:
                raise BackupError(
                    "object_conflict",
                    f"{entry['key']} already exists in {settings.object_store_url} with {existing.size} bytes, "
                    f"the backup has {entry['size']}; restore into an empty object store",
                )
            present += 1
            continue
        if not section["included"]:
            missing.append(entry["key"])
            continue
        store.put_file(entry["key"], src / "objects" / entry["key"], metadata=entry.get("metadata") or None)
        restored += 1
    return {
        "restored": restored,
        "already_present": present,
        "missing": len(missing),
        "missing_keys": missing[:20],
    }


# --- backup --------------------------------------------------------------------------------


def create_backup(
    settings: Settings, dest: Path, *, with_objects: bool = False, log: Log | None = None
) -> dict[str, Any]:
    """Back up one installation into the empty or new folder `dest`; returns the manifest written there."""
    say = log or (lambda message: None)
    dest = dest.expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(
            "backup_target_not_empty", f"{dest} is not empty; back up into a new or empty folder"
        )
    dest.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    created_at = dt.datetime.now(dt.UTC)

    # The point in time: the Lance versions current now. Copies taken later may hold newer files,
    # which the restore rolls back by checking out exactly these versions.
    db = _lance_connect(settings)
    tables: dict[str, dict[str, Any]] = {}
    for name in _lance_tables(db):
        table = db.open_table(name)
        tables[name] = {"version": int(table.version), "rows": int(table.count_rows())}
    say(f"lance: {len(tables)} table(s) at versions { ({n: t['version'] for n, t in tables.items()}) }")
    lance_started = time.perf_counter()
    for name, info in tables.items():
        info["files"], info["bytes"] = _copy_lance_table_out(settings, name, dest / "lance")
    copy = _lance_connect(settings, str(dest / "lance"))
    for name, info in tables.items():
        table = copy.open_table(name)
        table.checkout(info["version"])
        if table.count_rows() != info["rows"]:
            raise BackupError(
                "backup_inconsistent",
                f"the copy of Lance table {name} at version {info['version']} has {table.count_rows()} rows, "
                f"the live table had {info['rows']}; run the backup again",
            )
    lance_seconds = time.perf_counter() - lance_started

    graph: dict[str, Any] = {"snapshot": None}
    remote = None
    if is_remote(settings):
        from dataflux_pipelines.objectstore import open_object_store

        remote = open_object_store(settings)
        copies = dest / "graph" / SNAPSHOTS
        pointer = fetch_current(remote, GRAPH, lambda p: copies / f"v{p.version:06d}.kuzu")
        if pointer is not None:
            target = copies / f"v{pointer.version:06d}.kuzu"
            graph = {"snapshot": target.name, "version": pointer.version, "bytes": pointer.size}
            graph["published_key"] = pointer.key
    live = live_snapshot(settings.graph_dir) if remote is None else None
    if live is not None:
        target = dest / "graph" / SNAPSHOTS / live.path.name
        target.parent.mkdir(parents=True)
        shutil.copy2(live.path, target)  # published snapshots are never written again
        graph = {"snapshot": live.path.name, "version": live.version, "bytes": target.stat().st_size}
    for folder, prefix in ((CONTRIB, CONTRIB_PREFIX), (TOMBSTONES, TOMBSTONE_PREFIX)):
        files, size = _copy_objects_out(settings, prefix, dest / "graph" / folder)
        graph[folder] = {"files": files, "bytes": size}
    say(f"graph: snapshot {graph['snapshot'] or 'none published'}")

    from dataflux_pipelines.analytics.facts import FACTS, read_manifest

    if remote is not None:
        fetch_current(remote, ANALYTICS, lambda p: dest / "analytics" / FACTS)
        facts_manifest = read_manifest(settings, dest / "analytics" / FACTS)
        files, size = _tree_size(dest / "analytics" / FACTS)
    else:
        facts_manifest = read_manifest(settings)
        files, size = _copy_tree(settings.analytics_dir / FACTS, dest / "analytics" / FACTS)
    analytics = {"published": facts_manifest, "files": files, "bytes": size}
    files, size = _copy_tree(settings.events_dir, dest / "events")
    events = {"files": files, "bytes": size}

    dagster = _backup_dagster(settings, dest)
    say(
        f"dagster: {dagster['storage']}, {dagster['runs']} run(s), {dagster['media_partitions']} partition(s)"
    )
    objects = _backup_objects(settings, dest, with_objects)
    say(f"objects: {objects['count']} in the manifest, {objects['copied']} copied")

    files, size = _tree_size(dest)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": created_at.isoformat(),
        "dataflux_version": __version__,
        "source": {
            "home": str(settings.home),
            "dagster_home": str(settings.dagster_home),
            "lance_uri": settings.lance_uri,
            "object_store_url": settings.object_store_url,
        },
        "counts": {
            "assets": tables.get("assets", {}).get("rows", 0),
            "segments": tables.get("segments", {}).get("rows", 0),
            "runs": dagster["runs"],
            "media_partitions": dagster["media_partitions"],
            "objects": objects["count"],
        },
        "lance": {"tables": tables, "seconds": round(lance_seconds, 3)},
        "graph": graph,
        "analytics": analytics,
        "events": events,
        "dagster": dagster,
        "objects": objects,
        "included": [
            "lance tables (catalog, segments, vectors, collections, feedback, search parameters)",
            "published graph snapshot, graph contributions and tombstones",
            "published analytics Parquet facts and the query event log",
            f"Dagster instance ({dagster['storage']})",
            "object-store manifest (keys, sizes, etags)" + (" and the objects" if with_objects else ""),
        ],
        "not_included": list(NOT_COVERED if not with_objects else NOT_COVERED[:2] + NOT_COVERED[3:]),
        "files": files + 1,
        "bytes": size,
        "seconds": round(time.perf_counter() - started, 3),
    }
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, dest / MANIFEST)
    return manifest


# --- restore -------------------------------------------------------------------------------


def read_backup_manifest(src: Path) -> dict[str, Any]:
    """The manifest of a complete backup folder, or a BackupError saying what is wrong with it."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise BackupError(
            "backup_incomplete", f"{src} has no {MANIFEST}: not a DataFlux backup, or one that did not finish"
        ) from exc
    except json.JSONDecodeError as exc:
        raise BackupError("backup_unreadable", f"{src / MANIFEST} is not valid JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            "backup_format_unsupported",
            f"{src} has backup format {manifest.get('format_version')!r}; this DataFlux reads format {FORMAT_VERSION}",
        )
    return manifest


def _refuse_non_empty(settings: Settings, manifest: dict[str, Any]) -> None:
    problems = []
    if not _is_empty_dir(settings.home):
        problems.append(f"DATAFLUX_HOME {settings.home} is not empty")
    if not _lance_target_is_empty(settings):
        problems.append(f"DATAFLUX_LANCE_URI {settings.lance_uri} already holds data")
    if not _is_empty_dir(settings.dagster_home, frozenset({"dagster.yaml"})):
        problems.append(f"DAGSTER_HOME {settings.dagster_home} holds more than a dagster.yaml")
    elif manifest["dagster"]["storage"] == "postgres":
        storage = dagster_storage(settings.dagster_home)
        if storage.kind == "postgres" and _postgres_table_count(storage):
            problems.append(f"PostgreSQL database {storage.database} on {storage.host} already has tables")
    if problems:
        raise BackupError(
            "restore_target_not_empty",
            "; ".join(problems) + ". Restore only into empty locations (point the variables at new ones, "
            "or move the old data away first)",
        )


def restore_backup(settings: Settings, src: Path, *, log: Log | None = None) -> dict[str, Any]:
    """Recreate a backed-up installation in empty locations; returns what was restored and checked."""
    say = log or (lambda message: None)
    src = src.expanduser().resolve()
    manifest = read_backup_manifest(src)
    _refuse_non_empty(settings, manifest)
    started = time.perf_counter()
    settings.home.mkdir(parents=True, exist_ok=True)

    tables = manifest["lance"]["tables"]
    for name in tables:
        _copy_lance_table_in(settings, name, src / "lance")
    db = _lance_connect(settings)
    rolled_back = []
    for name, info in tables.items():
        table = db.open_table(name)
        if table.version != info["version"]:
            # The copy caught commits made after the backup began: return to the recorded version.
            table.checkout(info["version"])
            table.restore()
            rolled_back.append(name)
    say(f"lance: {len(tables)} table(s) restored, {len(rolled_back)} rolled back to the recorded version")

    graph = manifest["graph"]
    if graph.get("snapshot"):
        folder = settings.graph_dir / SNAPSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "graph" / SNAPSHOTS / graph["snapshot"], folder / graph["snapshot"])
        os.symlink(os.path.join(SNAPSHOTS, graph["snapshot"]), settings.graph_dir / POINTER)
    for folder_name, prefix in ((CONTRIB, CONTRIB_PREFIX), (TOMBSTONES, TOMBSTONE_PREFIX)):
        _copy_objects_in(settings, src / "graph" / folder_name, prefix)
    from dataflux_pipelines.analytics.facts import FACTS

    _copy_tree(src / "analytics" / FACTS, settings.analytics_dir / FACTS)
    _copy_tree(src / "events", settings.events_dir)

    _restore_dagster(settings, src, manifest["dagster"])
    say(f"dagster: {manifest['dagster']['storage']} instance restored")
    objects = _restore_objects(settings, src, manifest["objects"])
    say(
        f"objects: {objects['restored']} restored, {objects['already_present']} present, {objects['missing']} missing"
    )
    republished = _republish(settings, graph) if is_remote(settings) else []
    if republished:
        say(f"published to {settings.object_store_url}: {', '.join(republished)}")

    found = {name: int(db.open_table(name).count_rows()) for name in tables}
    counts = _instance_counts(settings.dagster_home)
    mismatches = [
        f"Lance table {name}: {found[name]} rows, backup recorded {info['rows']}"
        for name, info in tables.items()
        if found[name] != info["rows"]
    ]
    for key in ("runs", "media_partitions"):
        if counts[key] != manifest["dagster"][key]:
            mismatches.append(f"Dagster {key}: {counts[key]}, backup recorded {manifest['dagster'][key]}")
    if mismatches:
        raise BackupError("restore_incomplete", "; ".join(mismatches))
    return {
        "source": str(src),
        "created_at": manifest["created_at"],
        "tables": {name: {"rows": found[name], "version": tables[name]["version"]} for name in tables},
        "rolled_back": rolled_back,
        "graph_snapshot": graph.get("snapshot"),
        "dagster": {"storage": manifest["dagster"]["storage"], **counts},
        "objects": objects,
        "republished": republished,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _republish(settings: Settings, graph: dict[str, Any]) -> list[str]:
    """Publish the restored graph snapshot and facts to an S3 store that has no pointer yet, for readers."""
    from dataflux_pipelines.analytics.facts import FACTS, MANIFEST
    from dataflux_pipelines.objectstore import open_object_store

    store = open_object_store(settings)
    done = []
    if graph.get("snapshot") and read_pointer(store, GRAPH) is None:
        path = settings.graph_dir / SNAPSHOTS / graph["snapshot"]
        pointer = publish_file(store, GRAPH, graph["version"], path, suffix=".kuzu")
        done.append(pointer.key)
    facts = settings.analytics_dir / FACTS
    if (facts / MANIFEST).is_file() and read_pointer(store, ANALYTICS) is None:
        version = json.loads((facts / MANIFEST).read_text()).get("version") or next_version(store, ANALYTICS)
        done.append(publish_folder(store, ANALYTICS, version, facts).key)
    return done
