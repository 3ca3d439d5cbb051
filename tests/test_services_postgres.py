"""The production dagster.yaml on a real PostgreSQL server (and S3 step logs on a real moto server)."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from dataflux_pipelines.settings import REPO_ROOT

pytestmark = pytest.mark.services

media_files = dg.DynamicPartitionsDefinition(name="media_files")
LANDING: list[str] = []


@dg.asset(partitions_def=media_files, pool="kuzu_writer")
def probe_size(context: dg.AssetExecutionContext) -> int:
    print(f"probing {context.partition_key}")  # captured into the S3 compute log
    return len(context.partition_key)


probe_job = dg.define_asset_job("probe_job", selection=[probe_size])


@dg.sensor(job=probe_job)
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    known = set(context.instance.get_dynamic_partitions(media_files.name))
    new = [key for key in LANDING if key not in known]
    if not new:
        return dg.SkipReason("no new files")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in new],
        dynamic_partitions_requests=[media_files.build_add_request(new)],
    )


@pytest.fixture
def production_env(postgres_database, s3_server, tmp_path: Path) -> dict[str, str]:
    """DAGSTER_HOME with deployment/dagster.yaml plus the variables compose would set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deployment" / "dagster.yaml", home / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(home),
        **postgres_database.dagster_env(),
        "DAGSTER_COMPUTE_LOG_BUCKET": s3_server.make_bucket("logs"),
        "DATAFLUX_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "DATAFLUX_S3_REGION": s3_server.region,
        "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "AWS_DEFAULT_REGION": s3_server.region,
    }


@pytest.fixture
def production_instance(
    production_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    for name, value in production_env.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.from_config(production_env["DAGSTER_HOME"])
    try:
        yield instance
    finally:
        instance.dispose()


def _rows(server, sql: str, *params: object) -> list[tuple]:
    conn = psycopg2.connect(server.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_production_instance_uses_postgres_storage_queue_and_s3_logs(
    production_instance: dg.DagsterInstance,
) -> None:
    assert isinstance(production_instance.run_storage, PostgresRunStorage)
    assert isinstance(production_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(production_instance.schedule_storage, PostgresScheduleStorage)
    assert type(production_instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert isinstance(production_instance.compute_log_manager, S3ComputeLogManager)
    queue = production_instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 4
    assert production_instance.run_retries_enabled
    assert production_instance.run_retries_max_retries == 2


def test_a_sensor_tick_adds_partitions_and_a_partition_materializes_into_postgres(
    production_instance: dg.DagsterInstance, postgres_database, production_env: dict[str, str], s3_server
) -> None:
    LANDING[:] = ["incoming/clip 01.mp4", "b.jpg"]
    result = landing_sensor(dg.build_sensor_context(instance=production_instance))
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == LANDING
    # Direct invocation does not apply the partition requests (Dagster 1.13): do what the daemon does.
    for request in result.dynamic_partitions_requests:
        production_instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    assert isinstance(landing_sensor(dg.build_sensor_context(instance=production_instance)), dg.SkipReason)

    stored = _rows(
        postgres_database,
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
        "media_files",
    )
    assert sorted(row[0] for row in stored) == sorted(LANDING)

    run = dg.materialize([probe_size], partition_key="incoming/clip 01.mp4", instance=production_instance)
    assert run.success
    assert run.output_for_node("probe_size") == len("incoming/clip 01.mp4")
    assert _rows(postgres_database, "SELECT status FROM runs WHERE run_id = %s", run.run_id) == [("SUCCESS",)]
    materialized = _rows(
        postgres_database,
        "SELECT partition FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run.run_id,
    )
    assert materialized == [("incoming/clip 01.mp4",)]

    logs = s3_server.client().list_objects_v2(Bucket=production_env["DAGSTER_COMPUTE_LOG_BUCKET"])
    out_keys = [o["Key"] for o in logs.get("Contents", []) if o["Key"].endswith(".out")]
    assert out_keys and all(k.startswith(f"compute-logs/storage/{run.run_id}/") for k in out_keys)
    body = s3_server.client().get_object(Bucket=production_env["DAGSTER_COMPUTE_LOG_BUCKET"], Key=out_keys[0])
    assert "probing incoming/clip 01.mp4" in body["Body"].read().decode()


def test_init_script_migrates_an_empty_database_and_sets_the_writer_pools(
    production_env: dict[str, str], postgres_database, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        **production_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "deployment" / "init-dagster.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = {
        row[0]
        for row in _rows(postgres_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"runs", "event_logs", "dynamic_partitions", "concurrency_limits", "alembic_version"} <= tables
    limits = dict(_rows(postgres_database, 'SELECT concurrency_key, "limit" FROM concurrency_limits'))
    assert limits == {"kuzu_writer": 1, "duckdb_writer": 1}

    # Idempotent: a second start (compose restarts dagster-init) changes nothing and succeeds.
    again = subprocess.run(
        ["bash", str(REPO_ROOT / "deployment" / "init-dagster.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert dict(_rows(postgres_database, 'SELECT concurrency_key, "limit" FROM concurrency_limits')) == limits
