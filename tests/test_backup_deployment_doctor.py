"""`dataflux doctor`'s deployment checks in embedded mode: what is down is a warning, what is up is ok."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator

import pytest
from services import free_port

from dataflux_api.doctor import check_deployment
from dataflux_pipelines.settings import Settings


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 406)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_embedded_mode_reports_a_missing_daemon_api_and_mcp_as_warnings(settings: Settings) -> None:
    settings = dataclasses.replace(settings, api_port=free_port(), mcp_port=free_port())
    checks = {c.name: c for c in check_deployment(settings)}
    assert "postgres" not in checks and "bucket" not in checks
    for name in ("dagster daemon", "api server", "mcp server"):
        assert not checks[name].ok and checks[name].level == "warning", checks[name]
    assert "embedded" in checks["dagster daemon"].detail
    assert checks["code location"].ok and "4 sensor(s)" in checks["code location"].detail


def test_a_running_api_and_mcp_server_pass_the_health_probes(settings: Settings, http_port: int) -> None:
    settings = dataclasses.replace(settings, api_port=http_port, mcp_port=http_port)
    checks = {c.name: c for c in check_deployment(settings)}
    assert checks["api server"].ok and checks["api server"].detail.endswith("/health answers")
    assert checks["mcp server"].ok  # MCP answers a plain GET with 4xx: alive
