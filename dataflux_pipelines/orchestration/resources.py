"""Dagster resources: the stores and the model registry, opened once per run (or per sensor process)."""

from __future__ import annotations

import collections
import functools
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.objectstore import ObjectStore, open_object_store
from dataflux_pipelines.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from dataflux_pipelines.models.registry import ModelRegistry


class StoresResource(dg.ConfigurableResource):
    """DataFlux's settings, catalog and object store; `home` overrides DATAFLUX_HOME (tests, one-off runs)."""

    home: str | None = None
    _opened: tuple[Settings, Catalog, ObjectStore] | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        # Read on each use (cheap): a resource object outlives one run in tests and code servers.
        settings = Settings.from_env()
        return settings.with_home(Path(self.home)) if self.home else settings

    def _stores(self) -> tuple[Catalog, ObjectStore]:
        settings = self.settings
        if self._opened is None or self._opened[0] != settings:
            self._opened = (settings, Catalog(settings), open_object_store(settings))
        return self._opened[1], self._opened[2]

    @property
    def catalog(self) -> Catalog:
        return self._stores()[0]

    @property
    def store(self) -> ObjectStore:
        return self._stores()[1]


def shared_registry(settings: Settings) -> ModelRegistry:
    """One model registry per process and settings: models load once, not per run or tick. Safe
    from several threads at once (a run builds it on its model preload thread): one is built."""
    with _REGISTRY_LOCK:
        return _shared_registry(settings)


_REGISTRY_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _shared_registry(settings: Settings) -> ModelRegistry:
    from dataflux_pipelines.models.registry import ModelRegistry

    return ModelRegistry(settings)


class ModelsResource(dg.ConfigurableResource):
    """The model registry: one per process for the given settings, so models load once per run
    and a sensor's code server does not reload them on every tick."""

    def registry(self, settings: Settings) -> ModelRegistry:
        return shared_registry(settings)


def relax_sqlite_sync() -> None:
    """Let Dagster's SQLite storages commit without an fsync each (WAL with synchronous=NORMAL), and
    keep each of their files open once per process, so no event's connection is the last one closed.

    Dagster opens a new SQLite connection and commits once per event, and a run of 100 files writes
    about 1,200 events (a planned and a materialized event per file and stage, a check evaluation per
    file and check): with the default synchronous=FULL each commit waited for a disk flush, about
    80 ms on a busy machine. In WAL mode, NORMAL stays consistent and durable across a killed
    process; only an OS crash or power loss can drop the last commits, and a run left STARTED that
    way is noticed and its files requeued (`recovery.py`).

    The second cost was the close: the last connection to a WAL database checkpoints it (copies the
    WAL into the database and fsyncs) and deletes the WAL, so every event paid a checkpoint and the
    next one recreated the WAL (5.5 ms commit + 8.6 ms close per event measured here, 1.0 + 1.3 ms
    with another connection open). `_keep_open` holds one idle connection per database file (no
    transaction, no lock): checkpoints then happen as SQLite schedules them (every 1,000 WAL pages)
    and when the process ends, and what a commit made durable is unchanged. Only databases whose
    journal is already WAL (Dagster sets it on every storage it creates) are changed.

    Third, a new database file of Dagster's storages (an instance's runs, index and schedules, and one
    event log per run) is put in WAL before Dagster creates its tables, not after: Python's sqlite3
    commits each CREATE on its own, and in the default rollback journal each commit was four fsyncs,
    ~20 statements per file (93 fsyncs for a run's event log, 0.2-0.5 s per run on this disk; 252 for
    a new instance). Dagster sets WAL on these files right after creating them, so the journal they
    end with is the same; only their creation commits like the rest (WAL, synchronous=NORMAL)."""
    global _SQLITE_RELAXED
    if _SQLITE_RELAXED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_connection: object, _record: object) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            files = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
            path = files[0] if files else ""
            if str(mode).lower() != "wal" and path and _is_new_dagster_file(cursor, path):
                (mode,) = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                cursor.execute("PRAGMA synchronous=NORMAL")
                if path:
                    _keep_open(path)
        finally:
            cursor.close()

    event.listen(Engine, "connect", on_connect)
    _reuse_sqlite_engines()
    _SQLITE_RELAXED = True


# Dagster's SQLite storages (event log, runs, schedules) whose per-connection engines are reused.
_SQLITE_STORAGE_MODULES = (
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
)
# (URL, pool class, connect args) -> the engine Dagster's SQLite storages get for it; bounded like
# _KEPT_OPEN, for processes that open many instances.
_ENGINES: collections.OrderedDict[tuple[str, Any, str], Any] = collections.OrderedDict()
_ENGINES_MAX = 64


def _reuse_sqlite_engines() -> None:
    """Hand Dagster's SQLite storages one pooled SQLAlchemy engine per database file instead of a new
    NullPool engine per connection.

    Each of them calls `create_engine(..., poolclass=NullPool)` for every connection, i.e. for every
    event (and again for the index shard of an asset event): building the engine and its dialect and
    compiling every statement afresh (the compiled cache lives on the engine) was ~40 % of an event's
    cost in a profile of 20 documents (842 engines for 314 events, 3.2 s of 8.5 s). Reusing the engine
    removed that; the NullPool still opened a fresh sqlite3 connection per use (2.7 per event, each
    with the WAL set-up's three PRAGMAs) and closed it after. Now the engine keeps its connections
    (a QueuePool: 2 kept, up to 30 more while busy): 3.1 -> 2.0 ms per event measured over 1,200
    materializations and check evaluations plus their planned events (docs/ingest.md, ninth pass). Every use is still its own transaction committed as
    before (Dagster's `conn.begin()`); a connection back in the pool holds no transaction, lock or
    read snapshot (SQLAlchemy rolls back on return). Dagster's `dispose()` after each use would empty
    the pool, so it is a no-op on these engines; an engine dropped from this bounded cache is
    disposed for real. A database file that was deleted or replaced since a kept connection opened
    it (Dagster's `wipe` unlinks run shards) is noticed at checkout and the connection reopened, so
    no write goes to a file that is gone. Only SQLite file URLs asked for with a NullPool are pooled."""
    import importlib

    from sqlalchemy.pool import NullPool, QueuePool

    original = importlib.import_module("dagster._core.storage.sql").create_engine

    def create_engine(url: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs.get("poolclass") is not NullPool or not str(url).startswith("sqlite:"):
            return original(url, *args, **kwargs)
        connect_args = dict(kwargs.get("connect_args") or {})
        key = (str(url), NullPool, repr(sorted(connect_args.items())))
        with _KEPT_LOCK:
            engine = _ENGINES.get(key)
            if engine is not None:
                _ENGINES.move_to_end(key)
                return engine
        pooled = {k: v for k, v in kwargs.items() if k not in ("poolclass", "connect_args")}
        engine = original(
            url,
            poolclass=QueuePool,
            pool_size=2,
            max_overflow=30,
            connect_args={**connect_args, "check_same_thread": False},  # a pooled connection moves threads
            **pooled,
        )
        database = os.path.realpath(engine.url.database) if engine.url.database else None
        if database:
            _guard_replaced_file(engine, database)
        engine.dispose = _keep_pool  # Dagster disposes after every use
        evicted = []
        with _KEPT_LOCK:
            if database:
                _DAGSTER_FILES[database] = None
                while len(_DAGSTER_FILES) > _ENGINES_MAX:
                    _DAGSTER_FILES.popitem(last=False)  # long created: only its first connect asks
            kept = _ENGINES.setdefault(key, engine)
            _ENGINES.move_to_end(key)
            while len(_ENGINES) > _ENGINES_MAX:
                evicted.append(_ENGINES.popitem(last=False)[1])
        for old in [*evicted, *([engine] if kept is not engine else [])]:
            type(old).dispose(old)  # the real dispose: closes the pooled connections it holds
        return kept

    for name in _SQLITE_STORAGE_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "create_engine", None) is original:
            setattr(module, "create_engine", create_engine)  # noqa: B010 - a module attribute
    # A forked child must not share its parent's pooled sqlite3 connections: it drops them unclosed
    # (SQLAlchemy's recipe for pools across fork) and opens its own.
    if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere nothing forks
        os.register_at_fork(after_in_child=_forget_pooled_connections)


def _forget_pooled_connections() -> None:
    for engine in list(_ENGINES.values()):
        type(engine).dispose(engine, close=False)


def _keep_pool(close: bool = True) -> None:
    """`Engine.dispose` of the pooled engines above: Dagster calls it after each use; the pool stays."""


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _guard_replaced_file(engine: Any, path: str) -> None:
    """Reopen a pooled connection whose database file was deleted or replaced after it was opened."""
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    def opened(_dbapi_connection: object, record: Any) -> None:
        record.info["dataflux_file"] = _file_identity(path)

    def checkout(_dbapi_connection: object, record: Any, _proxy: object) -> None:
        if record.info.get("dataflux_file") != _file_identity(path):
            raise DisconnectionError(f"{path} was replaced or deleted since this connection opened it")

    event.listen(engine, "connect", opened)
    event.listen(engine, "checkout", checkout)


_SQLITE_RELAXED = False
# The database files Dagster's SQLite storages last asked an engine for (see relax_sqlite_sync).
_DAGSTER_FILES: collections.OrderedDict[str, None] = collections.OrderedDict()


def _is_new_dagster_file(cursor: Any, path: str) -> bool:
    """A database file of Dagster's storages with no table yet (Dagster is about to create them)."""
    real = os.path.realpath(path)
    with _KEPT_LOCK:
        if real not in _DAGSTER_FILES:
            return False
    (tables,) = cursor.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return tables == 0


# Dagster database file -> an idle connection held open (see relax_sqlite_sync); bounded, so a process
# that opens many instances (tests, one-off runs) closes the oldest rather than piling up files.
_KEPT_OPEN: collections.OrderedDict[str, Any] = collections.OrderedDict()
_KEPT_OPEN_MAX = 32
_KEPT_LOCK = threading.Lock()


def _keep_open(path: str) -> None:
    import sqlite3

    with _KEPT_LOCK:
        if path in _KEPT_OPEN:
            _KEPT_OPEN.move_to_end(path)
            return
        # isolation_level=None: never opens a transaction, so it holds no lock and no read snapshot. The
        # one read attaches it to the WAL (SQLite opens it lazily): only then does it count as open.
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _KEPT_OPEN[path] = conn
        while len(_KEPT_OPEN) > _KEPT_OPEN_MAX:
            _, oldest = _KEPT_OPEN.popitem(last=False)
            oldest.close()


def ensure_dagster_home(settings: Settings) -> None:
    """Point Dagster at DAGSTER_HOME, giving a fresh folder the embedded dagster.yaml."""
    relax_sqlite_sync()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
