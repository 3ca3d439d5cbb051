"""Dagster's SQLite storages as DataFlux configures them: commits without an fsync each, one idle
connection kept per database file so an event's connection is never the last one closed, and one
pooled engine per file whose connections outlive a use but never a deleted or replaced file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool, QueuePool

from dataflux_pipelines.orchestration import resources


def _wal_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE events (n INTEGER)")


def test_event_connections_commit_durably_and_never_checkpoint_on_close(tmp_path: Path) -> None:
    resources.relax_sqlite_sync()
    db = tmp_path / "run.db"
    _wal_db(db)
    # Dagster's SQLite storages: a NullPool engine, so every event opens and closes its own connection.
    engine = sa.create_engine(f"sqlite:///{db}", poolclass=NullPool)
    for n in range(20):
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            conn.exec_driver_sql("INSERT INTO events VALUES (?)", (n,))
    # The last close did not checkpoint the WAL away: the kept connection is still open on the file.
    assert str(db) in resources._KEPT_OPEN
    assert (tmp_path / "run.db-wal").exists()
    # What was committed is there for another process, as after a kill of this one.
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; print(sqlite3.connect({str(db)!r}).execute('SELECT count(*) FROM events').fetchone()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert count == "20"
    # The kept connection holds no lock and no snapshot: a full checkpoint completes beside it.
    with sqlite3.connect(db) as other:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def test_kept_connections_are_bounded(tmp_path: Path) -> None:
    resources.relax_sqlite_sync()
    for i in range(resources._KEPT_OPEN_MAX + 5):
        db = tmp_path / f"instance_{i}.db"
        _wal_db(db)
        with sa.create_engine(f"sqlite:///{db}", poolclass=NullPool).begin() as conn:
            conn.exec_driver_sql("INSERT INTO events VALUES (1)")
    assert len(resources._KEPT_OPEN) == resources._KEPT_OPEN_MAX
    assert str(tmp_path / "instance_0.db") not in resources._KEPT_OPEN  # the oldest were closed
    assert str(tmp_path / f"instance_{resources._KEPT_OPEN_MAX + 4}.db") in resources._KEPT_OPEN


def test_dagster_sqlite_storages_reuse_one_engine_per_file(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    first = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'a.db'}", poolclass=NullPool)
    again = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'a.db'}", poolclass=NullPool)
    other = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'b.db'}", poolclass=NullPool)
    assert first is again and first is not other
    assert isinstance(first.pool, QueuePool)  # connections are kept between uses
    pooled = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert pooled is not first  # anything but a NullPool engine is left to SQLAlchemy

    # Through a real instance: every event is stored and read back, from this process and another.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.get() as instance:
        for n in range(30):
            instance.report_runless_asset_event(dg.AssetMaterialization("thing", partition=str(n)))
        records = instance.fetch_materializations(dg.AssetKey("thing"), limit=100).records
        assert sorted(int(r.partition_key or -1) for r in records) == list(range(30))
    index = tmp_path / "dagster" / "history" / "runs" / "index.db"
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; print(sqlite3.connect({str(index)!r}).execute("
            "\"SELECT count(*) FROM event_logs WHERE dagster_event_type='ASSET_MATERIALIZATION'\").fetchone()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert count == "30"


def test_new_dagster_files_are_created_in_wal_and_other_new_files_are_left_alone(tmp_path: Path) -> None:
    import dagster as dg
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    # A new file of Dagster's storages: WAL and synchronous=NORMAL from its first connection, before
    # any table exists, so creating its ~20 tables and indexes costs no fsync per statement.
    engine = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'new_run.db'}", poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar() == 0
    # Any other new SQLite file, and an existing Dagster file with a rollback journal, keep theirs.
    with sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}", poolclass=NullPool).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    with sqlite3.connect(tmp_path / "old_run.db") as conn:
        conn.execute("CREATE TABLE events (n INTEGER)")
    old = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'old_run.db'}", poolclass=NullPool)
    with old.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"

    # A real instance and run: every file Dagster made is WAL, and its run's events are all there.
    home = tmp_path / "dagster"
    home.mkdir()

    @dg.asset
    def thing() -> int:
        return 1

    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = dg.materialize([thing], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("thing")) is not None
    files = sorted((home / "history").rglob("*.db")) + sorted((home / "schedules").rglob("*.db"))
    assert len(files) >= 4  # runs, index, the run's event log, schedules
    for path in files:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", path.name


def _driver_connection(engine: sa.Engine) -> object:
    with engine.connect() as conn:
        return conn.connection.dbapi_connection


def test_a_pooled_connection_is_reused_across_uses_and_dagsters_dispose(tmp_path: Path) -> None:
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    db = tmp_path / "run.db"
    _wal_db(db)
    engine = sqlite_event_log.create_engine(f"sqlite:///{db}", poolclass=NullPool)
    first = _driver_connection(engine)
    engine.dispose()  # what Dagster calls after every use
    assert _driver_connection(engine) is first
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO events VALUES (1)")
    # Back in the pool it holds no transaction: another connection checkpoints the whole WAL.
    with sqlite3.connect(db) as other:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_a_pooled_connection_to_a_deleted_or_replaced_file_is_reopened(tmp_path: Path) -> None:
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    db = tmp_path / "run.db"
    _wal_db(db)
    engine = sqlite_event_log.create_engine(f"sqlite:///{db}", poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO events VALUES (1)")
    stale = _driver_connection(engine)
    # What Dagster's `wipe` does to a run's shard, then a new file at the same path.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    resources._KEPT_OPEN.pop(str(db)).close()
    _wal_db(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO events VALUES (7)")
    with engine.begin() as conn:
        assert conn.connection.dbapi_connection is not stale
        assert conn.exec_driver_sql("SELECT n FROM events").scalars().all() == [7]
        conn.exec_driver_sql("INSERT INTO events VALUES (8)")
    with sqlite3.connect(db) as other:  # the write went to the file that is there
        assert [n for (n,) in other.execute("SELECT n FROM events ORDER BY n")] == [7, 8]


def test_engines_dropped_from_the_bounded_cache_close_their_connections(tmp_path: Path) -> None:
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    first = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'first.db'}", poolclass=NullPool)
    _driver_connection(first)
    assert first.pool.checkedin() == 1
    for i in range(resources._ENGINES_MAX):
        sqlite_event_log.create_engine(f"sqlite:///{tmp_path / f'other_{i}.db'}", poolclass=NullPool)
    assert first.pool.checkedin() == 0  # disposed for real when it left the cache
    again = sqlite_event_log.create_engine(f"sqlite:///{tmp_path / 'first.db'}", poolclass=NullPool)
    assert again is not first


def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    import os

    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    resources.relax_sqlite_sync()
    db = tmp_path / "run.db"
    _wal_db(db)
    engine = sqlite_event_log.create_engine(f"sqlite:///{db}", poolclass=NullPool)
    _driver_connection(engine)
    pool = engine.pool
    assert pool.checkedin() == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's kept connection is not in the pool it checks out from
        try:
            fresh = engine.pool is not pool and engine.pool.checkedin() == 0
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO events VALUES (3)")
            os.write(write, b"fresh" if fresh else b"shared")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"fresh"
    assert engine.pool is pool and pool.checkedin() == 1
    with engine.connect() as conn:  # the parent's pooled connection still works
        assert conn.exec_driver_sql("SELECT n FROM events").scalars().all() == [3]
