"""Upload over HTTP → `dataflux process` (Dagster, in-process) → searchable over HTTP → delete leaves nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from media_factory import make_pdf

from dataflux_api.app import create_app
from dataflux_api.cli.main import cli
from dataflux_pipelines import layout
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.settings import Settings


@pytest.mark.slow  # Dagster run plus model loads: about 35 s on the 2-core machine
def test_an_uploaded_document_becomes_searchable_and_deleting_it_removes_it_everywhere(
    settings: Settings, tmp_path
) -> None:
    # `settings` comes from the shared fixture: Dagster finds its instance through DAGSTER_HOME.
    settings = dataclasses.replace(settings, lance_read_consistency_s=0.0)
    pdf = make_pdf(
        tmp_path / "harbour.pdf",
        ["The lighthouse keeper logged every ship entering the harbour during the storm."],
    )
    with TestClient(
        app=create_app(settings), base_url="http://127.0.0.1:8000", raise_server_exceptions=False
    ) as client:
        uploaded = client.post(
            "/api/v1/assets",
            files={"file": ("harbour.pdf", pdf.read_bytes(), "application/pdf")},
            data={"context": "port archive"},
        )
        assert uploaded.status_code == 201, uploaded.text
        asset_id = uploaded.json()["id"]

        result = CliRunner().invoke(cli, ["process", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output[result.output.index("{") :])
        assert report["completed"] == 1

        detail = client.get(f"/api/v1/assets/{asset_id}").json()
        assert detail["status"] == "completed" and detail["media_type"] == "document"
        assert detail["segments"] and detail["segments"][0]["page"] == 1

        by_phrase = client.post("/api/v1/search", json={"query": '"lighthouse keeper"'}).json()
        assert [r["id"] for r in by_phrase["results"]] == [asset_id]
        by_meaning = client.post(
            "/api/v1/search", json={"query": "vessels arriving at the port in bad weather"}
        )
        assert by_meaning.json()["results"][0]["id"] == asset_id

        assert client.delete(f"/api/v1/assets/{asset_id}").status_code == 204
        after = client.post("/api/v1/search", json={"query": '"lighthouse keeper"'}).json()
        assert after["results"] == []

    catalog = Catalog(settings)
    assert catalog.get_asset(asset_id) is None and catalog.segments_for(asset_id) == []
    assert list(open_object_store(settings).list(layout.asset_prefix(asset_id))) == []
    for name in catalog.db.table_names():
        if name.startswith(("vision__", "text__", "audio__")) or name == layout.SHOT_FRAMES_TABLE:
            assert catalog.db.open_table(name).count_rows(f"asset_id = '{asset_id}'") == 0, name
