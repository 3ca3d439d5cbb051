"""A stored field appears in the Lance schema, the REST OpenAPI document and the MCP output schema alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_support import make_settings
from litestar.testing import TestClient
from mcp import Client

from dataflux_api import schemas
from dataflux_api.app import create_app
from dataflux_api.mcp_server import build_server
from dataflux_pipelines.records import (
    ASSETS_SCHEMA,
    SEGMENTS_SCHEMA,
    AssetRecord,
    SegmentRecord,
    public_fields,
)

INTERNAL_SEGMENT = {
    "mime_type",
    "filename",
    "collection_id",
    "context",
    "search_text",
    "keyframe_path",
    "thumbnail_path",
    "text_vector",
}
INTERNAL_ASSET = {"landing_key"}


def _openapi(tmp_path: Path) -> dict:
    with TestClient(app=create_app(make_settings(tmp_path)), base_url="http://127.0.0.1:8000") as c:
        return c.get("/schema/openapi.json").json()


def _mcp_asset_schema(tmp_path: Path) -> dict:
    async def run() -> dict:
        async with Client(build_server(settings=make_settings(tmp_path))) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            return tools["dataflux_get_asset"].output_schema

    return asyncio.run(run())


def test_public_fields_are_the_lance_columns_minus_the_internal_ones() -> None:
    assert {f[0] for f in public_fields(SegmentRecord)} == set(SEGMENTS_SCHEMA.names) - INTERNAL_SEGMENT
    assert {f[0] for f in public_fields(AssetRecord)} == set(ASSETS_SCHEMA.names) - INTERNAL_ASSET


def test_rest_and_mcp_show_every_public_segment_and_asset_field(tmp_path: Path) -> None:
    components = _openapi(tmp_path)["components"]["schemas"]
    rest_segment = set(components["Segment"]["properties"])
    rest_detail = set(components["AssetDetail"]["properties"])
    mcp = _mcp_asset_schema(tmp_path)
    defs = mcp.get("$defs", {})
    mcp_segment = set(defs["SegmentDetail"]["properties"])
    mcp_detail = set(mcp["properties"])

    segment_fields = {f[0] for f in public_fields(SegmentRecord)}
    links = {f[0] for f in schemas.SEGMENT_LINKS}
    assert rest_segment == mcp_segment == segment_fields | links

    asset_fields = (
        {f[0] for f in public_fields(AssetRecord)}
        | {f[0] for f in schemas.ASSET_LINKS}
        | {f[0] for f in schemas.SEGMENT_PAGE_FIELDS}
        | {"segments"}
    )
    # Transport-specific extras: REST keeps the seed contract's processing_status, MCP adds the resource URI.
    assert rest_detail - {"processing_status"} == mcp_detail - {"uri"} == asset_fields
