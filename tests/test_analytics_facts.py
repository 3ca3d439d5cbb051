"""Analytics facts and rollups match what was written and queried; shared assets run in real Dagster."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
from graph_support import SegmentSpec, add_asset, picture

from dataflux_pipelines import layout, records
from dataflux_pipelines.analytics.facts import collect_facts, publish_facts, record_query
from dataflux_pipelines.analytics.reader import AnalyticsReader
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.graph.contrib import graph_contribution
from dataflux_pipelines.graph.store import GraphReader
from dataflux_pipelines.orchestration.assets import analytics_facts, auto_collections, media_graph
from dataflux_pipelines.orchestration.resources import StoresResource
from dataflux_pipelines.orchestration.schedules import SCHEDULES
from dataflux_pipelines.settings import Settings

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def _library(catalog: Catalog) -> list[str]:
    ids = [
        add_asset(catalog, f"p{i}.png", "image", [SegmentSpec(picture(i), {"dark": 0.7})])[0]
        for i in range(3)
    ]
    ids.append(
        add_asset(
            catalog, "v.mp4", "video", [SegmentSpec(picture(9)), SegmentSpec(picture(8))], duration=4.0
        )[0]
    )
    ids.append(add_asset(catalog, "bad.mp4", "video", [], status="failed", reason_code="corrupt_media")[0])
    ids.append(
        add_asset(catalog, "bad2.pdf", "document", [], status="failed", reason_code="encrypted_document")[0]
    )
    fb = catalog.table(layout.FEEDBACK_TABLE, records.FEEDBACK_SCHEMA)
    fb.add(
        [
            {"id": f"f{i}", "type": t, "entity_id": ids[0], "feedback": ok, "query": "q", "created_at": NOW}
            for i, (t, ok) in enumerate(
                [("search", True), ("search", False), ("search", True), ("segment", False)]
            )
        ]
    )
    return ids


def test_stats_match_what_was_ingested_and_queried(settings: Settings) -> None:
    catalog = Catalog(settings)
    reader = AnalyticsReader(settings)
    assert reader.stats()["available"] is False
    _library(catalog)
    for i, (query, ms, n) in enumerate(
        [("red car", 10, 3), ("Unicorn", 30, 0), ("unicorn ", 50, 0), ("x", 20, 1)]
    ):
        record_query(settings, query, ms, n, {"text": query, "i": i})
    runs = [
        {
            "run_id": "r1",
            "job_name": "process_media",
            "status": "SUCCESS",
            "partitions": 2,
            "start_time": NOW,
            "end_time": NOW + dt.timedelta(seconds=30),
            "duration_s": 30.0,
        },
        {
            "run_id": "r2",
            "job_name": "process_media",
            "status": "FAILURE",
            "partitions": 1,
            "start_time": NOW,
            "end_time": NOW + dt.timedelta(seconds=10),
            "duration_s": 10.0,
            "failure_reason": "MediaError: corrupt_media",
        },
    ]
    publish_facts(settings, collect_facts(settings, catalog, runs))
    stats = reader.stats()
    assert stats["available"] is True
    assert stats["totals"]["assets"] == 6 and stats["totals"]["segments"] == 5
    assert stats["assets_by_type"] == {"image": 3, "video": 2, "document": 1}
    assert stats["assets_by_status"] == {"completed": 4, "failed": 2}
    assert {r["reason_code"]: r["assets"] for r in stats["failure_reasons"]} == {
        "corrupt_media": 1,
        "encrypted_document": 1,
    }
    lat = stats["query_latency"]
    assert lat["queries"] == 4 and lat["p50_ms"] == 25.0 and lat["max_ms"] == 50.0 and lat["no_results"] == 2
    assert (
        stats["top_no_result_queries"][0]["query"] == "unicorn"
        and stats["top_no_result_queries"][0]["times"] == 2
    )
    assert {r["type"]: (r["positive"], r["negative"]) for r in stats["feedback_by_type"]} == {
        "search": (2, 1),
        "segment": (0, 1),
    }
    rate = stats["processing_rate"]
    assert rate[0]["runs"] == 2 and rate[0]["failed"] == 1 and rate[0]["files"] == 3
    assert not list((settings.analytics_dir / "facts").rglob(".*"))


def test_readers_keep_answering_while_facts_are_republished(settings: Settings) -> None:
    catalog = Catalog(settings)
    _library(catalog)
    tables = collect_facts(settings, catalog, [])
    publish_facts(settings, tables)
    reader = AnalyticsReader(settings)
    errors, answers, done = [], [], threading.Event()

    def read() -> None:
        for _ in range(100000):
            try:
                answers.append(reader.stats()["totals"]["assets"])
            except Exception as exc:
                errors.append(repr(exc))
            if done.is_set():
                return

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(15):
        publish_facts(settings, tables)
    done.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and answers and set(answers) == {6}


def test_shared_assets_materialize_in_a_real_dagster_instance(settings: Settings) -> None:
    catalog = Catalog(settings)
    ids = _library(catalog)
    for asset_id in ids:
        graph_contribution(settings, catalog, asset_id)
    record_query(settings, "dark", 12, 3, {})
    resources = {"stores": StoresResource(home=str(settings.home))}
    assert analytics_facts.op.pool == "duckdb_writer" and SCHEDULES[0].cron_schedule == "*/15 * * * *"
    with dg.instance_for_test(temp_dir=str(settings.dagster_home)) as instance:
        result = dg.materialize(
            [auto_collections, media_graph, analytics_facts], instance=instance, resources=resources
        )
        assert result.success
        graph_meta = result.asset_materializations_for_node("media_graph")[0].metadata
        assert graph_meta["snapshot_version"].value == 1
        assert graph_meta["node_counts"].data["Asset"] == 6
        assert "dark" in graph_meta["top_concepts"].value
        facts_meta = result.asset_materializations_for_node("analytics_facts")[0].metadata
        assert facts_meta["rows_assets"].value == 6 and facts_meta["rows_queries"].value == 1
        # The second refresh sees the first run in Dagster's run storage.
        again = dg.materialize([analytics_facts], instance=instance, resources=resources)
        assert again.success
    stats = AnalyticsReader(settings).stats()
    assert stats["totals"]["runs"] >= 1
    assert GraphReader(settings.graph_dir).counts()["nodes"]["Asset"] == 6
