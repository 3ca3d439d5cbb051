"""The Grafana dashboard and the Prometheus alert rules only use metrics DataFlux really exports.

A small sample set (a note, a picture and a lying file that fails with a reason code) goes through
the real pipeline on a real Dagster instance; then the REST API's and the MCP server's `/metrics`
are scraped over HTTP, and the code location's exporter is served on a real port and scraped too.
Every PromQL expression in the dashboard and the rules must parse, and every metric it names must
be among the scraped families."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import promql_parser
import pytest
import yaml
from api_support import api_client, private_homes
from litestar.testing import TestClient
from media_factory import make_image, make_markdown
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from services import free_port

from dataflux_api.cli.pipeline import run_process
from dataflux_api.mcp_server import build_server, http_app
from dataflux_api.service import DataFlux
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.orchestration.metrics import registry_for, serve_code_location_metrics
from dataflux_pipelines.settings import REPO_ROOT

DASHBOARD = REPO_ROOT / "deployment/grafana/dashboards/dataflux.json"
ALERTS = REPO_ROOT / "deployment/prometheus/alerts.yml"
PROMETHEUS = REPO_ROOT / "deployment/prometheus/prometheus.yml"
# Series Prometheus itself adds to every scrape target.
PROMETHEUS_BUILTINS = {"up"}
_METRIC = re.compile(r"\b(dataflux_[a-z0-9_]+|up)\b(?!\s*\()")


def _names(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("dashboards")
    with pytest.MonkeyPatch.context() as mp:
        settings = private_homes(mp, root)
        inbox = root / "inbox"
        inbox.mkdir()
        make_markdown(inbox / "harbour-notes.md")
        make_image(inbox / "photo.png", "PNG", (96, 64))
        (inbox / "song.wav").write_text('{"this": "is JSON, not a WAV file"}')
        list(ingest_paths(open_object_store(settings), Catalog(settings), [inbox]))
        report = run_process(settings, quiet=True)
        assert (report.completed, report.failed) == (2, 1)

        with api_client(settings) as client:
            assert client.post("/api/v1/search", json={"query": "harbour"}).status_code in (200, 201)
            api = client.get("/metrics").text
        service = DataFlux(settings)
        app = http_app(build_server(service), settings, "127.0.0.1", service=service)
        with TestClient(app=app, base_url="http://127.0.0.1:8004") as mcp:
            mcp_metrics = mcp.get("/metrics")
            assert mcp_metrics.status_code == 200, mcp_metrics.text
            mcp_text = mcp_metrics.text
        with dg.DagsterInstance.get() as instance:
            _heartbeat_once(instance)
            port = free_port()
            server, thread = start_http_server(port, addr="127.0.0.1", registry=registry_for(instance))
            try:
                code = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
            finally:
                server.shutdown()
                thread.join(5)
        yield {"settings": settings, "api": api, "mcp": mcp_text, "code": code}


def _heartbeat_once(instance: dg.DagsterInstance, timeout: float = 180.0) -> None:
    """Run the real Dagster daemon until its sensor daemon has reported a heartbeat, then stop it."""
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-daemon")),
            "run",
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while "SENSOR" not in instance.get_daemon_heartbeats():
            assert daemon.poll() is None, "dagster-daemon exited"
            assert time.monotonic() < deadline, "no daemon heartbeat"
            time.sleep(1)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)


def _exported(scraped: dict[str, Any]) -> set[str]:
    return _names(scraped["api"]) | _names(scraped["mcp"]) | _names(scraped["code"]) | PROMETHEUS_BUILTINS


def _panel_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} queries nothing"
        out.extend((panel["title"], t["expr"]) for t in panel["targets"])
    return out


def _rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_every_panel_query_parses_and_names_an_exported_metric(scraped: dict[str, Any]) -> None:
    exported = _exported(scraped)
    for title, expr in _panel_exprs():
        promql_parser.parse(expr)
        names = set(_METRIC.findall(expr))
        assert names, f"{title}: {expr!r} names no metric"
        missing = names - exported
        assert not missing, f"panel {title!r} uses {sorted(missing)}, which /metrics does not export"


def test_every_alert_rule_parses_and_names_an_exported_metric(scraped: dict[str, Any]) -> None:
    exported = _exported(scraped)
    alerts = dict(_rule_exprs())
    # The four the operator must be woken for, at least.
    assert {
        "DataFluxFilesStuck",
        "DataFluxFailureRateSpike",
        "DataFluxDataDiskAlmostFull",
        "DataFluxDagsterDaemonDead",
    } <= set(alerts)
    for alert, expr in alerts.items():
        promql_parser.parse(expr)
        missing = set(_METRIC.findall(expr)) - exported
        assert not missing, f"alert {alert} uses {sorted(missing)}, which /metrics does not export"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    exprs = " ".join(expr for _, expr in _panel_exprs())
    for metric in (
        "dataflux_assets",
        "dataflux_failed_assets",
        "dataflux_queue_depth",
        "dataflux_stage_seconds",
        "dataflux_dagster_runs",
        "dataflux_dagster_daemon_heartbeat_age_seconds",
        "dataflux_model_load_seconds",
        "dataflux_model_inference_seconds_total",
        "dataflux_http_request_duration_seconds_bucket",
        "dataflux_http_requests_total",
    ):
        assert metric in exprs, metric


def test_the_scrapes_carry_the_sample_sets_facts(scraped: dict[str, Any]) -> None:
    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    api = samples(scraped["api"])
    assert api[("dataflux_assets", (("status", "completed"),))] == 2
    assert api[("dataflux_failed_assets", (("reason_code", "type_mismatch"),))] == 1
    assert api[("dataflux_model_inference_calls_total", (("model", "text"),))] >= 1
    assert api[("dataflux_data_disk_size_bytes", ())] > 0
    search = [k for k in api if k[0] == "dataflux_http_request_duration_seconds_count"]
    assert any(dict(labels).get("route") == "/api/v1/search" for _, labels in search)
    mcp = samples(scraped["mcp"])
    assert mcp[("dataflux_assets", (("status", "failed"),))] == 1
    code = samples(scraped["code"])
    assert code[("dataflux_dagster_instance_up", ())] == 1
    assert (
        code[("dataflux_dagster_runs", (("status", "SUCCESS"),))]
        + code[("dataflux_dagster_runs", (("status", "FAILURE"),))]
        >= 1
    )
    # Each stage that two files passed has their durations summarised.
    assert code[("dataflux_stage_recent_files", (("stage", "segments"),))] == 2
    assert code[("dataflux_stage_seconds", (("quantile", "0.95"), ("stage", "segments")))] > 0


def test_prometheus_scrapes_the_three_services_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"dataflux-api", "dataflux-mcp", "dagster-code"}
    assert jobs["dataflux-api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["dataflux-mcp"]["static_configs"][0]["targets"] == ["mcp:8004"]
    assert jobs["dagster-code"]["static_configs"][0]["targets"] == ["dagster-code:9464"]
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["dagster-code"]["environment"]["DATAFLUX_DAGSTER_METRICS_PORT"] == "9464"


def test_the_code_location_exporter_binds_only_in_a_code_server_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.argv", ["dagster", "api", "execute_run", "{}"])
    assert serve_code_location_metrics(free_port()) is False  # a run worker never binds
    assert serve_code_location_metrics(0) is False


def test_mcp_metrics_need_admin_when_a_secret_is_set(tmp_path: Path) -> None:
    from api_support import SECRET, bearer, make_settings

    settings = make_settings(tmp_path, jwt_secret=SECRET)
    service = DataFlux(settings)
    app = http_app(build_server(service), settings, "127.0.0.1", service=service)
    with TestClient(app=app, base_url="http://127.0.0.1:8004") as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(["search"])).status_code == 403
        ok = client.get("/metrics", headers=bearer(["admin"]))
        assert ok.status_code == 200 and "dataflux_assets" in ok.text
