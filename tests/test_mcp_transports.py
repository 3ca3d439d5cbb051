"""The MCP server as users run it: `dataflux mcp` over stdio, `dataflux mcp --http` with tokens and Origin checks."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from api_support import MCP_HEADERS, MCP_INIT, SECRET, token
from click.testing import CliRunner
from litestar.testing import TestClient
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from media_factory import make_markdown
from services import free_port, stop_process

from dataflux_api.cli.main import cli
from dataflux_api.mcp_server import build_server, http_app
from dataflux_api.service import DataFlux
from dataflux_pipelines.settings import REPO_ROOT, Settings, SettingsError

DEADLINE_S = 120.0


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLUX_")}
    env.update(DATAFLUX_HOME=str(settings.home), DAGSTER_HOME=str(settings.dagster_home), **extra)
    return env


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if hasattr(block, "text"))


def test_stdio_subprocess_lists_tools_queues_a_file_and_reads_it_back(settings: Settings) -> None:
    inbox = settings.mcp_allowed_roots[0]
    inbox.mkdir(parents=True)
    path = make_markdown(inbox / "tides.md", sections=1, words_per_section=40)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dataflux_api.cli.main", "mcp"],
        env=child_env(settings),
        cwd=str(REPO_ROOT),
    )

    async def main() -> tuple[Any, ...]:
        with anyio.fail_after(DEADLINE_S):
            async with Client(params, read_timeout_seconds=DEADLINE_S) as client:
                tools = await client.list_tools()
                queued = await client.call_tool("dataflux_analyze", {"file_path": "tides.md"})
                detail = await client.call_tool("dataflux_get_asset", {"id": queued.structured_content["id"]})
                stats = await client.read_resource("dataflux://statistics")
                refused = await client.call_tool("dataflux_analyze", {"file_path": "/proc/self/environ"})
                return tools, queued, detail, stats, refused

    tools, queued, detail, stats, refused = anyio.run(main)
    assert "dataflux_search" in {t.name for t in tools.tools}
    assert not queued.is_error, text_of(queued)
    assert queued.structured_content["status"] == "queued"
    assert (
        detail.structured_content["filename"] == path.name and detail.structured_content["status"] == "queued"
    )
    assert json.loads(stats.contents[0].text)["processing_queue"]["queued"] == 1
    assert refused.is_error and "path_not_allowed: " in text_of(refused)


@pytest.fixture
def http_server(settings: Settings) -> Iterator[str]:
    """`dataflux mcp --http` with a JWT secret, on a free loopback port, ready to answer."""
    port = free_port()
    settings.mcp_allowed_roots[0].mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflux_api.cli.main", "mcp", "--http", "--port", str(port)],
        env=child_env(settings, DATAFLUX_JWT_SECRET=SECRET),
        cwd=str(REPO_ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.communicate()[1].decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the MCP HTTP server did not start in time") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc, timeout=15)


def http_session(url: str, bearer: str, body: Any) -> Any:
    async def main() -> Any:
        with anyio.fail_after(DEADLINE_S):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"})
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                return await body(client)

    return anyio.run(main)


def test_http_refuses_token_less_calls_and_serves_valid_tokens_by_permission(
    http_server: str, settings: Settings
) -> None:
    no_token = httpx.post(http_server, json=MCP_INIT, headers=MCP_HEADERS, timeout=30)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "missing_token"
    forged = httpx.post(
        http_server, json=MCP_INIT, headers={**MCP_HEADERS, "Authorization": "Bearer abc.def.ghi"}, timeout=30
    )
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"

    make_markdown(settings.mcp_allowed_roots[0] / "notes.md", sections=1, words_per_section=30)

    async def reader(client: Client) -> tuple[Any, Any, Any]:
        tools = await client.list_tools()
        write = await client.call_tool("dataflux_analyze", {"file_path": "notes.md"})
        stats = await client.read_resource("dataflux://statistics")
        return tools, write, stats

    tools, write, stats = http_session(http_server, token(["search"]), reader)
    assert len(tools.tools) == 5
    assert write.is_error and "missing_permission: " in text_of(write)
    assert json.loads(stats.contents[0].text)["total_assets"] == 0

    async def writer(client: Client) -> tuple[Any, Any]:
        read = await client.call_tool("dataflux_get_asset", {"id": "00000000-0000-4000-8000-000000000000"})
        return read, await client.call_tool("dataflux_analyze", {"file_path": "notes.md"})

    read, queued = http_session(http_server, token(["assets:write"]), writer)
    assert read.is_error and "missing_permission: " in text_of(read)
    assert not queued.is_error, text_of(queued)
    assert queued.structured_content["status"] == "queued"


def test_http_refuses_browser_origins_other_than_loopback(http_server: str) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token(['search'])}"}
    evil = httpx.post(
        http_server, json=MCP_INIT, headers={**headers, "Origin": "https://evil.example"}, timeout=30
    )
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "origin_not_allowed"
    local = httpx.post(
        http_server, json=MCP_INIT, headers={**headers, "Origin": "http://localhost:5173"}, timeout=30
    )
    assert local.status_code == 200, local.text
    rebinding = httpx.post(
        http_server, json=MCP_INIT, headers={**headers, "Host": "attacker.example:8004"}, timeout=30
    )
    assert rebinding.status_code == 403 and rebinding.json()["error"]["code"] == "host_not_allowed"


def test_http_without_a_secret_answers_loopback_callers_without_a_token(settings: Settings) -> None:
    app = http_app(build_server(DataFlux(settings)), settings, "127.0.0.1")
    with TestClient(app=app, base_url="http://127.0.0.1:8004") as client:
        response = client.post("/mcp", json=MCP_INIT, headers=MCP_HEADERS)
        assert response.status_code == 200, response.text
        assert (
            client.post(
                "/mcp", json=MCP_INIT, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
            ).status_code
            == 403
        )


def test_binding_beyond_loopback_without_a_secret_is_refused(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DATAFLUX_JWT_SECRET"):
        http_app(build_server(DataFlux(settings)), settings, "0.0.0.0")
    result = CliRunner().invoke(cli, ["mcp", "--http", "--host", "0.0.0.0", "--port", str(free_port())])
    assert result.exit_code != 0 and "DATAFLUX_JWT_SECRET" in result.output
    short = dataclasses.replace(settings, jwt_secret="too short")
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        http_app(build_server(DataFlux(short)), short, "127.0.0.1")
