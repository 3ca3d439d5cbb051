"""One hostile file cannot hold a run hostage: segments and text per file are capped, and say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file, sniff_and_probe

pytestmark = pytest.mark.reliability


def test_a_huge_one_line_markdown_file_is_cut_to_the_text_budget(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    path.write_text("# Title\n\n" + "word " * 400_000)  # 2 MB on one line
    options = AnalysisOptions(max_text_chars=50_000, max_segments=1000)
    analysis = analyze_file(str(path), sniff_and_probe(str(path)), options)
    assert analysis.summary["truncated"]["characters"] > 2_000_000 - 10
    assert analysis.summary["truncated"]["kept"] == 50_000
    assert 30 < len(analysis.segments) < 60  # about 50,000 / (225 words x 5 chars) chunks


def test_a_file_with_more_segments_than_the_cap_keeps_the_first_ones(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text(("A sentence about tides and harbours. " * 40 + "\n\n") * 200)
    options = AnalysisOptions(max_segments=25)
    analysis = analyze_file(str(path), sniff_and_probe(str(path)), options)
    assert len(analysis.segments) == 25
    assert analysis.summary["truncated"]["segments"] > 25
    assert [s.sequence_number for s in analysis.segments] == list(range(25))


def test_asset_detail_pages_its_segments_over_rest_and_mcp(tmp_path: Path) -> None:
    import asyncio

    from api_support import api_client, make_settings
    from graph_support import SegmentSpec, add_asset, picture
    from mcp import Client

    from dataflux_api.mcp_server import build_server
    from dataflux_pipelines.catalog import Catalog

    settings = make_settings(tmp_path)
    asset_id = add_asset(
        Catalog(settings), "many.png", "image", [SegmentSpec(picture(i), {"dark": 0.5}) for i in range(5)]
    )[0]
    with api_client(settings) as client:
        page = client.get(
            f"/api/v1/assets/{asset_id}", params={"segment_offset": 2, "segment_limit": 2}
        ).json()
        assert page["segments_total"] == 5 and page["segment_offset"] == 2
        assert [s["sequence_number"] for s in page["segments"]] == [2, 3]
        assert client.get(f"/api/v1/assets/{asset_id}", params={"segment_limit": 0}).status_code in (400, 422)

    async def mcp_page() -> dict:
        async with Client(build_server(settings=settings)) as c:
            result = await c.call_tool(
                "dataflux_get_asset", {"id": asset_id, "segment_offset": 4, "segment_limit": 2}
            )
            return result.structured_content

    out = asyncio.run(mcp_page())
    assert out["segments_total"] == 5 and [s["sequence_number"] for s in out["segments"]] == [4]
