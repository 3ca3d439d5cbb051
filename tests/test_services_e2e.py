"""The deployment's shape end to end: objects, landing and Lance on a real S3 server process, the real
DataFlux definitions on a real PostgreSQL instance, the landing sensor, and backup/restore of it all."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
from dagster_postgres import PostgresRunStorage
from media_factory import markdown_text, prose

from dataflux_api.doctor import check_deployment
from dataflux_api.query.models import SearchRequest
from dataflux_api.service import DataFlux
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash
from dataflux_pipelines.landing import LandingReceipt, receive_upload
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.backup import create_backup, restore_backup
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import execute_runs, process_landing
from dataflux_pipelines.orchestration.partitions import asset_id_of, keys_by_asset
from dataflux_pipelines.orchestration.sensors import landing_sensor
from dataflux_pipelines.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.services

QUERY = "hostile files fail their own partition"


def _rows(dsn: str, sql: str, *params: object) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def _env(s3_server, bucket: str, pg, root: Path) -> dict[str, str]:
    """What compose gives every DataFlux container, pointed at the test's servers."""
    return {
        "DATAFLUX_HOME": str(root / "home"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "DATAFLUX_OBJECT_STORE_URL": f"s3://{bucket}/store",
        "DATAFLUX_LANCE_URI": f"s3://{bucket}/lance",
        **s3_server.settings_env(),
        **pg.dagster_env(),
        "DAGSTER_COMPUTE_LOG_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "AWS_DEFAULT_REGION": s3_server.region,
    }


def _dagster_home(root: Path) -> None:
    (root / "dagster_home").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "deployment" / "dagster.yaml", root / "dagster_home" / "dagster.yaml")


def _tick(instance: dg.DagsterInstance) -> dg.SensorResult:
    result = landing_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:  # what the daemon does with them
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _race(settings: Settings, payload: bytes) -> list[LandingReceipt]:
    """Two API processes receive the same bytes at the same instant."""
    barrier = threading.Barrier(2)
    receipts: list[LandingReceipt] = []

    def upload(name: str) -> None:
        store, catalog = open_object_store(settings), Catalog(settings)
        barrier.wait(timeout=30)
        receipts.append(
            receive_upload(
                store,
                catalog,
                io.BytesIO(payload),
                name,
                max_bytes=settings.upload_max_bytes,
                scratch=settings.scratch_dir,
            )
        )

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("first.md", "second.md")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return receipts


@pytest.fixture(scope="module")
def cluster(s3_server, postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Upload race, a plain PutObject, sensor ticks and two processing runs on S3 + PostgreSQL, once."""
    root = tmp_path_factory.mktemp("cluster")
    bucket = s3_server.make_bucket("e2e")
    name = postgres_server.create_database("e2e_source")
    pg = dataclasses.replace(postgres_server, dbname=name)
    env = _env(s3_server, bucket, pg, root)
    _dagster_home(root)
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("DATAFLUX_"):
                mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings.from_env()
        client = s3_server.client()
        uploaded = markdown_text(sections=2).encode()
        dropped = prose(300, seed=3).encode()
        receipts = _race(settings, uploaded)
        client.put_object(
            Bucket=bucket,
            Key="store/landing/drop/readme.txt",
            Body=dropped,
            Metadata={"dataflux-context": "dropped by a script"},
        )
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            # The first tick sees the PutObject as still being written, however slow this machine is;
            # the second sees it settled (settle 0), so the test does not race the clock.
            mp.setenv("DATAFLUX_LANDING_SETTLE_S", "3600")
            first = _tick(instance)  # the upload is registered; the fresh PutObject is left to settle
            uploaded_id = asset_id_for_hash(hashlib.sha256(uploaded).hexdigest())
            key = keys_by_asset(instance.get_dynamic_partitions("media_files"))[uploaded_id]
            (run,) = execute_runs(defs, instance, "process_media", [{"dagster/partition": key}])
            mp.setenv("DATAFLUX_LANDING_SETTLE_S", "0")
            second = _tick(instance)  # the dropped file has settled
            third = _tick(instance)
            report = process_landing(settings, instance, defs)
            fourth = _tick(instance)  # the processed keys are gone from landing
            partitions = sorted(asset_id_of(k) for k in instance.get_dynamic_partitions("media_files"))
        yield {
            "root": root,
            "env": env,
            "pg": pg,
            "bucket": bucket,
            "settings": settings,
            "receipts": receipts,
            "uploaded_id": uploaded_id,
            "dropped_id": asset_id_for_hash(hashlib.sha256(dropped).hexdigest()),
            "ticks": (first, second, third, fourth),
            "run": run,
            "report": report,
            "partitions": partitions,
            "search": DataFlux(settings).search(SearchRequest(query=QUERY, limit=10)),
        }


def test_two_concurrent_uploads_of_the_same_bytes_land_once_on_s3(cluster: dict[str, Any], s3_server) -> None:
    receipts = cluster["receipts"]
    assert len(receipts) == 2
    assert {r.asset_id for r in receipts} == {cluster["uploaded_id"]}
    assert sorted(r.duplicate_of is None for r in receipts) == [False, True]
    (duplicate,) = [r for r in receipts if r.duplicate_of]
    assert duplicate.duplicate_of == cluster["uploaded_id"]
    assets = Catalog(cluster["settings"]).find_assets()
    assert sum(1 for a in assets if a["id"] == cluster["uploaded_id"]) == 1


def test_the_landing_sensor_turns_a_plain_put_into_one_partition_and_never_requests_it_twice(
    cluster: dict[str, Any],
) -> None:
    first, second, third, fourth = cluster["ticks"]
    uploaded, dropped = cluster["uploaded_id"], cluster["dropped_id"]
    assert [asset_id_of(r.partition_key) for r in first.run_requests] == [uploaded]
    assert '"unsettled": 1' in (first.cursor or "")
    assert [asset_id_of(r.partition_key) for r in second.run_requests] == [dropped]
    assert not third.run_requests and not fourth.run_requests
    assert cluster["partitions"] == sorted([uploaded, dropped])
    row = Catalog(cluster["settings"]).get_asset(dropped)
    assert row is not None and row["filename"] == "readme.txt" and row["status"] == "completed"
    assert row["context"] == "dropped by a script"  # S3 object metadata stands in for a sidecar


def test_both_files_are_processed_into_lance_on_s3_and_found_by_search(
    cluster: dict[str, Any], s3_server
) -> None:
    assert cluster["run"].success
    assert (cluster["report"].completed, cluster["report"].failed) == (1, 0)
    statuses = {a["id"]: a["status"] for a in Catalog(cluster["settings"]).find_assets()}
    assert statuses == {cluster["uploaded_id"]: "completed", cluster["dropped_id"]: "completed"}
    found = {r.id for r in cluster["search"].results}
    assert {cluster["uploaded_id"], cluster["dropped_id"]} <= found
    keys = [
        o["Key"]
        for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=cluster["bucket"])
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("lance/segments.lance/") for k in keys)
    assert any(k.startswith(f"store/objects/{cluster['dropped_id']}/") for k in keys)
    assert not any(k.startswith("store/landing/") and not k.endswith(".json") for k in keys)
    assert not (Path(cluster["env"]["DATAFLUX_HOME"]) / "lance").exists()


def test_runs_events_and_partitions_of_the_real_definitions_are_stored_in_postgres(
    cluster: dict[str, Any],
) -> None:
    dsn = cluster["pg"].dsn
    runs = dict(_rows(dsn, "SELECT run_id, status FROM runs WHERE pipeline_name = %s", "process_media"))
    assert runs.get(cluster["run"].run_id) == "SUCCESS" and len(runs) == 2
    materialized = {
        asset_id_of(row[0])
        for row in _rows(
            dsn,
            "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key = %s",
            '["media_file"]',
        )
    }
    assert materialized == {cluster["uploaded_id"], cluster["dropped_id"]}
    stored = {asset_id_of(r[0]) for r in _rows(dsn, "SELECT partition FROM dynamic_partitions")}
    assert stored == set(cluster["partitions"])


def test_doctor_passes_the_deployment_and_names_what_is_missing(
    cluster: dict[str, Any], postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = cluster["settings"]
    found = check_deployment(settings)
    checks = {c.name: c for c in found}
    assert checks["postgres"].ok and "head revision" in checks["postgres"].detail
    probed = sorted(c.detail.split(": ")[0] for c in found if c.name == "bucket" and c.ok)
    assert probed == [settings.lance_uri, settings.object_store_url]
    assert checks["code location"].ok
    # No daemon ran and no API is up: in a deployment those are errors, not warnings.
    assert not checks["dagster daemon"].ok and checks["dagster daemon"].level == "error"
    assert not checks["api server"].ok and checks["api server"].level == "error"

    empty = postgres_server.create_database("e2e_empty")
    monkeypatch.setenv("DAGSTER_PG_DB", empty)
    missing = dataclasses.replace(settings, object_store_url="s3://no-such-bucket/store")
    found = check_deployment(missing)
    checks = {c.name: c for c in found}
    assert not checks["postgres"].ok and "no Dagster schema" in checks["postgres"].detail
    buckets = {c.detail.split(":", 2)[1].strip("/").split("/")[0]: c.ok for c in found if c.name == "bucket"}
    assert buckets == {"no-such-bucket": False, cluster["bucket"]: True}
    # The doctor reports; it must not have migrated the empty database.
    storage = PostgresRunStorage(
        f"postgresql+psycopg2://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{empty}",
        should_autocreate_tables=False,
    )
    assert storage.alembic_version()[0] is None


def test_a_backup_restores_into_a_fresh_bucket_and_database_with_the_same_answers(
    cluster: dict[str, Any], s3_server, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in cluster["env"].items():
        monkeypatch.setenv(key, value)
    backup = tmp_path / "backup"
    manifest = create_backup(cluster["settings"], backup, with_objects=True)
    assert manifest["dagster"]["storage"] == "postgres" and manifest["dagster"]["bytes"] > 0
    assert manifest["counts"]["media_partitions"] == 2

    root = tmp_path / "restored"
    pg = dataclasses.replace(postgres_server, dbname=postgres_server.create_database("e2e_restored"))
    env = _env(s3_server, s3_server.make_bucket("restored"), pg, root)
    _dagster_home(root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    target = Settings.from_env()
    report = restore_backup(target, backup)
    assert report["dagster"] == {
        "storage": "postgres",
        "runs": manifest["counts"]["runs"],
        "media_partitions": 2,
    }
    assert report["objects"]["restored"] == manifest["objects"]["count"]

    again = DataFlux(target).search(SearchRequest(query=QUERY, limit=10))
    assert [(r.id, round(r.score, 5)) for r in again.results] == [
        (r.id, round(r.score, 5)) for r in cluster["search"].results
    ]
    restored_runs = {r[0] for r in _rows(pg.dsn, "SELECT run_id FROM runs")}
    assert cluster["run"].run_id in restored_runs
