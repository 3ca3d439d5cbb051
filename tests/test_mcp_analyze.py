"""dataflux_analyze: files inside the allowed roots land like uploads; everything else is refused with a reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from media_factory import make_markdown

from dataflux_api.mcp_server import build_server
from dataflux_api.service import DataFlux
from dataflux_pipelines import layout
from dataflux_pipelines.settings import Settings


@pytest.fixture
def roots(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """Settings whose only allowed root is `tmp/inbox`, plus a secret file right beside it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "outside.txt").write_text("private notes")
    (tmp_path / "outside_dir").mkdir()
    (tmp_path / "outside_dir" / "doc.txt").write_text("private notes")
    return dataclasses.replace(settings, mcp_allowed_roots=(inbox,), lance_read_consistency_s=0.0), inbox


def analyze(server: Any, arguments: dict[str, Any]) -> Any:
    async def main() -> Any:
        async with Client(server) as client:
            return await client.call_tool("dataflux_analyze", arguments)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if hasattr(block, "text"))


def test_a_file_inside_the_roots_is_queued_through_landing_like_an_upload(
    roots: tuple[Settings, Path],
) -> None:
    settings, inbox = roots
    path = make_markdown(inbox / "tides.md", sections=1, words_per_section=40)
    service = DataFlux(settings)
    server = build_server(service)
    result = analyze(server, {"file_path": str(path), "context": "field notes", "priority": "high"})
    assert not result.is_error, text_of(result)
    out = result.structured_content
    assert out["action"] == "queued" and out["status"] == "queued" and out["priority"] == 2
    assert out["eta_seconds"] > 0 and out["uri"] == f"dataflux://assets/{out['id']}"
    row = service.catalog.get_asset(out["id"])
    assert row["status"] == "queued" and row["context"] == "field notes" and row["priority"] == 2
    assert row["filename"] == "tides.md"
    assert service.store.head(row["landing_key"]).size == path.stat().st_size
    assert row["landing_key"].startswith(layout.LANDING_PREFIX)
    again = analyze(server, {"file_path": "tides.md"})  # relative paths start at the first root
    assert again.structured_content["action"] == "duplicate"
    assert again.structured_content["duplicate_of"] == out["id"]


def test_an_asset_id_requests_reanalysis_and_an_unknown_one_is_refused(roots: tuple[Settings, Path]) -> None:
    settings, inbox = roots
    path = make_markdown(inbox / "notes.md", sections=1, words_per_section=30)
    service = DataFlux(settings)
    server = build_server(service)
    asset_id = analyze(server, {"file_path": str(path)}).structured_content["id"]
    result = analyze(server, {"asset_id": asset_id, "priority": "low"})
    assert not result.is_error, text_of(result)
    out = result.structured_content
    assert out["action"] == "reanalysis_requested" and out["priority"] == 8
    assert service.store.head(out["request_key"]) is not None
    missing = analyze(server, {"asset_id": "00000000-0000-4000-8000-000000000000"})
    assert missing.is_error and "asset_not_found: " in text_of(missing)


def escape_cases(tmp: Path, inbox: Path) -> dict[str, tuple[str, str]]:
    (inbox / "link.txt").symlink_to(tmp / "outside.txt")
    (inbox / "linked_dir").symlink_to(tmp / "outside_dir")
    (inbox / "folder").mkdir()
    (inbox / "empty.txt").write_bytes(b"")
    return {
        "dot-dot relative": ("../outside.txt", "path_not_allowed"),
        "dot-dot inside an absolute path": (
            str(inbox / "folder" / ".." / ".." / "outside.txt"),
            "path_not_allowed",
        ),
        "absolute outside": (str(tmp / "outside.txt"), "path_not_allowed"),
        "symlinked file pointing out": (str(inbox / "link.txt"), "path_not_allowed"),
        "symlinked folder pointing out": (str(inbox / "linked_dir" / "doc.txt"), "path_not_allowed"),
        "proc environ": ("/proc/self/environ", "path_not_allowed"),
        "missing outside": (str(tmp / "nope.txt"), "path_not_allowed"),
        "missing inside": (str(inbox / "nope.txt"), "not_found"),
        "a folder": (str(inbox / "folder"), "not_a_file"),
        "an empty file": (str(inbox / "empty.txt"), "empty_file"),
        "NUL byte": ("tides\x00.md", "invalid_path"),
    }


def test_paths_outside_the_roots_or_not_regular_files_are_refused_with_a_reason(
    roots: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, inbox = roots
    service = DataFlux(settings)
    server = build_server(service)
    for name, (path, code) in escape_cases(tmp_path, inbox).items():
        result = analyze(server, {"file_path": path})
        assert result.is_error, name
        assert f"{code}: " in text_of(result), (name, text_of(result))
        assert "private notes" not in text_of(result)
    assert service.catalog.assets.count_rows() == 0
    assert list(service.store.list(layout.LANDING_PREFIX)) == []


def test_a_symlink_that_stays_inside_the_roots_is_followed(roots: tuple[Settings, Path]) -> None:
    settings, inbox = roots
    target = make_markdown(inbox / "real.md", sections=1, words_per_section=20)
    (inbox / "alias.md").symlink_to(target)
    result = analyze(build_server(DataFlux(settings)), {"file_path": str(inbox / "alias.md")})
    assert not result.is_error, text_of(result)
    assert result.structured_content["filename"] == "real.md"


@pytest.mark.parametrize(
    "arguments",
    [{}, {"file_path": "a.md", "asset_id": "00000000-0000-4000-8000-000000000000"}],
    ids=["neither", "both"],
)
def test_analyze_needs_exactly_one_of_file_path_or_asset_id(
    roots: tuple[Settings, Path], arguments: dict[str, Any]
) -> None:
    result = analyze(build_server(DataFlux(roots[0])), arguments)
    assert result.is_error and "invalid_arguments: " in text_of(result)


def test_with_no_allowed_roots_every_path_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = make_markdown(tmp_path / "x.md", sections=1, words_per_section=10)
    server = build_server(DataFlux(dataclasses.replace(settings, mcp_allowed_roots=())))
    result = analyze(server, {"file_path": str(path)})
    assert result.is_error and "no allowed roots" in text_of(result)


@pytest.mark.slow
def test_a_file_queued_with_analyze_becomes_searchable_after_processing(roots: tuple[Settings, Path]) -> None:
    from dataflux_api.cli.pipeline import run_process

    settings, inbox = roots
    path = inbox / "tides.md"
    path.write_text(
        "# Harbour log\n\nThe ocean tides rose above the harbour wall twice this week, "
        "and the lighthouse keeper measured the spring tide at dawn.\n"
    )
    server = build_server(DataFlux(settings))
    asset_id = analyze(server, {"file_path": str(path)}).structured_content["id"]
    report = run_process(settings, quiet=True)
    assert report.completed == 1 and not report.failures

    async def main() -> tuple[Any, Any, Any]:
        async with Client(server) as client:
            found = await client.call_tool(
                "dataflux_search", {"query": "ocean tides", "media_type": "document"}
            )
            detail = await client.call_tool("dataflux_get_asset", {"id": asset_id})
            graph = await client.call_tool(
                "dataflux_relationships", {"id": asset_id, "types": ["HAS_SEGMENT"]}
            )
            return found, detail, graph

    found, detail, graph = anyio.run(main)
    assert not found.is_error, text_of(found)
    assert found.structured_content["results"][0]["asset_id"] == asset_id
    assert detail.structured_content["status"] == "completed" and detail.structured_content["segments"]
    assert not graph.is_error, text_of(graph)
    assert {e["source"] for e in graph.structured_content["edges"]} == {asset_id}
