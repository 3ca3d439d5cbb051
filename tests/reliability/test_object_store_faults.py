"""Object-store faults: an S3 endpoint that answers 500/503 or stalls is retried with backoff, then the
file fails with `object_store_unavailable`; nothing is half-written, and the file resumes later."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import media_factory as mf
import pytest
from audit import audit
from click.testing import CliRunner
from faulty_s3 import FaultyS3, faulty_s3
from tally import TALLY

from dataflux_api.cli.main import cli
from dataflux_api.service import DataFlux
from dataflux_pipelines.errors import Reason
from dataflux_pipelines.objectstore import ObjectStoreUnavailable, S3ObjectStore, open_object_store
from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.services]

FAST_RETRIES = {
    "DATAFLUX_S3_MAX_ATTEMPTS": "4",
    "DATAFLUX_S3_RETRY_BASE_S": "0.05",
    "DATAFLUX_S3_TIMEOUT_S": "1",
}


@pytest.fixture
def proxy(s3_server) -> Iterator[FaultyS3]:
    with faulty_s3(s3_server.endpoint_url) as p:
        yield p


def _env(s3_server, proxy: FaultyS3, bucket: str) -> dict[str, str]:
    return {
        **s3_server.settings_env(),
        "DATAFLUX_S3_ENDPOINT_URL": proxy.url,
        "DATAFLUX_OBJECT_STORE_URL": f"s3://{bucket}/store",
        **FAST_RETRIES,
    }


@pytest.fixture
def store(s3_server, s3_bucket: str, proxy: FaultyS3, tmp_path: Path) -> S3ObjectStore:
    env = {"DATAFLUX_HOME": str(tmp_path / "home"), **_env(s3_server, proxy, s3_bucket)}
    opened = open_object_store(Settings.from_env(env))
    assert isinstance(opened, S3ObjectStore)
    return opened


def _upstream_keys(s3_server, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_few_5xx_answers_are_retried_and_the_write_lands(store: S3ObjectStore, proxy: FaultyS3) -> None:
    proxy.inject("status", 2, status=503)
    proxy.inject("status", 1, status=500)
    store.put_bytes("a/one.bin", b"payload")
    assert proxy.served["status"] == 3
    assert store.get_bytes("a/one.bin") == b"payload"


def test_an_endpoint_that_keeps_failing_gives_a_reason_and_writes_nothing(
    store: S3ObjectStore, proxy: FaultyS3, s3_server, s3_bucket: str, tmp_path: Path
) -> None:
    proxy.inject("status", -1, status=503)
    with pytest.raises(ObjectStoreUnavailable) as info:
        store.put_bytes("a/never.bin", b"payload")
    assert info.value.reason is Reason.OBJECT_STORE_UNAVAILABLE
    assert "4 time(s)" in info.value.message and "503" in info.value.message
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100_000)
    with pytest.raises(ObjectStoreUnavailable):
        store.put_file("a/never-file.bin", source)
    assert proxy.served["status"] == 8  # 4 tries each, no more
    proxy.heal()
    assert _upstream_keys(s3_server, s3_bucket) == []  # no half object, no temp object


def test_a_stalled_answer_or_a_body_cut_mid_stream_is_retried(store: S3ObjectStore, proxy: FaultyS3) -> None:
    data = bytes(range(256)) * 400
    store.put_bytes("b/data.bin", data)
    proxy.inject("stall", 1, seconds=3, match=lambda method, path: method == "GET")
    assert store.get_bytes("b/data.bin") == data
    proxy.inject("stall_body", 1, seconds=3, match=lambda method, path: method == "GET")
    assert store.get_bytes("b/data.bin") == data
    with store.local_copy("b/data.bin") as path:
        assert path.read_bytes() == data
    assert proxy.served["stall"] == 1 and proxy.served["stall_body"] == 1


def test_a_run_whose_store_fails_midway_fails_its_files_with_the_reason_then_resumes(
    dataflux_env: Settings, s3_server, s3_bucket: str, proxy: FaultyS3, tmp_path: Path, monkeypatch
) -> None:
    for name, value in _env(s3_server, proxy, s3_bucket).items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    notes = [
        mf.make_markdown(tmp_path / f"notes{i}.md", sections=2 + i, words_per_section=40) for i in range(2)
    ]
    assert CliRunner().invoke(cli, ["ingest", *map(str, notes)]).exit_code == 0
    landed = _upstream_keys(s3_server, s3_bucket)
    assert len([k for k in landed if not k.endswith(".json")]) == 2
    # The canonical copies cannot be written: every PUT under objects/ fails, mid-run.
    proxy.inject("status", -1, status=503, match=lambda method, path: method == "PUT" and "/objects/" in path)
    with dg.DagsterInstance.get() as instance:
        process_landing(settings, instance, defs)
    result = audit(settings)
    assert {r["status"] for r in result.assets.values()} == {"failed"}
    assert {r["reason_code"] for r in result.assets.values()} == {"object_store_unavailable"}
    assert sum(result.segments_per_asset.values()) == 0 and result.clean
    # Landing kept, and no canonical copy or derived file half-written under objects/.
    keys = _upstream_keys(s3_server, s3_bucket)
    assert [k for k in keys if "/landing/" in f"/{k}"] == landed
    assert not [k for k in keys if "/objects/" in f"/{k}"]
    TALLY.add("inputs_tried", 2)
    TALLY.add("refused_with_reason", 2)

    proxy.heal()
    service = DataFlux(settings)
    for asset_id in result.assets:
        service.reanalyze(asset_id)
    with dg.DagsterInstance.get() as instance:
        process_landing(settings, instance, defs)
    after = audit(settings)
    assert {r["status"] for r in after.assets.values()} == {"completed"}, after.assets
    assert after.clean and all(after.segments_per_asset[a] > 0 for a in after.assets)
