"""The servers `dataflux api` and `dataflux mcp --http` start: a pooled client's idle connection outlives
uvicorn's 5 s default, so a client reusing it is never told "server disconnected" mid-request."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from api_support import make_settings, served_api

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _answer(conn: socket.socket) -> bytes:
    """One whole response on a keep-alive connection (headers plus Content-Length bytes), b"" if closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _idle_then_reuse(url: str, idle_s: float) -> bytes:
    """Send a request, stay idle for `idle_s`, then send another on the same connection."""
    with socket.create_connection(("127.0.0.1", urlsplit(url).port or 80), timeout=30) as conn:
        conn.sendall(REQUEST)
        assert _answer(conn).startswith(b"HTTP/1.1 200"), "the first request failed"
        time.sleep(idle_s)
        try:
            conn.sendall(REQUEST)
            return _answer(conn)
        except (BrokenPipeError, ConnectionResetError):
            return b""


def test_an_idle_connection_outlives_uvicorns_default_and_closes_after_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.http_keep_alive_s > 6
    with served_api(settings) as url:
        assert _idle_then_reuse(url, 6.5).startswith(b"HTTP/1.1 200")  # uvicorn alone closes it at 5 s
    with served_api(dataclasses.replace(settings, http_keep_alive_s=1)) as url:
        assert _idle_then_reuse(url, 2.5) == b""  # the server let it go: the setting is what decides
