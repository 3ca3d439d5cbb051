"""A file still `processing` is half written (segments before vectors and graph edges): search shows
it marked as such, the same way on REST, the web UI and MCP, never as if it were complete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import media_factory as mf
import pytest
from api_support import api_client, make_settings
from mcp import Client

from dataflux_api.mcp_server import build_server
from dataflux_api.service import DataFlux
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.pipeline import MediaPipeline

pytestmark = pytest.mark.reliability


def test_a_half_written_file_is_marked_processing_in_rest_web_and_mcp(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    notes = mf.make_markdown(tmp_path / "harbour.md", sections=2, words_per_section=60)
    with api_client(settings) as client:
        asset_id = client.post(
            "/api/v1/assets", files={"file": (notes.name, notes.read_bytes(), "text/markdown")}
        ).json()["id"]
        # The real stages, stopped where a worker could die: segments written, no vectors yet.
        with MediaPipeline(settings) as pipeline:
            pipeline.mark_processing([asset_id])
            assert pipeline.media_file([asset_id])[asset_id].ok
            assert pipeline.segments([asset_id])[asset_id].ok
        (row,) = Catalog(settings, reader=True).get_assets([asset_id])
        assert row["status"] == "processing" and row["segment_count"]

        rest = client.post("/api/v1/search", json={"query": "field notes"}).json()
        (hit,) = [r for r in rest["results"] if r["id"] == asset_id]
        assert hit["metadata"]["status"] == "processing"
        page = client.get("/", params={"q": "field notes"}).text
        card = page[page.index(f'data-result="{asset_id}"') :]
        card = card[: card.index("</article>")]
        assert 'class="status status-processing"' in card and "may be incomplete" in card

    async def mcp_search() -> tuple[dict, str]:
        async with Client(build_server(DataFlux(settings))) as c:
            result = await c.call_tool("dataflux_search", {"query": "field notes"})
            return result.structured_content, result.content[0].text

    structured, text = asyncio.run(mcp_search())
    (mcp_hit,) = [h for h in structured["results"] if h["asset_id"] == asset_id]
    assert mcp_hit["status"] == "processing"
    assert "[processing: still being written, may be incomplete]" in text
