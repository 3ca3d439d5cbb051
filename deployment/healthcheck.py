"""Container health probe: exit 0 when every URL answers, 1 otherwise (no curl in the slim image).

Usage: healthcheck.py [URL ...]; URLs are http(s)://... (any status below 500 counts) or tcp://host:port.
Without arguments it probes $DATAFLUX_HEALTHCHECK_URL.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlparse

TIMEOUT_S = 5.0


def probe(url: str) -> str | None:
    """None when the endpoint is healthy, else a one-line reason."""
    parsed = urlparse(url)
    if parsed.scheme == "tcp":
        if not parsed.hostname or not parsed.port:
            return f"{url}: tcp URLs need host and port"
        try:
            with socket.create_connection((parsed.hostname, parsed.port), timeout=TIMEOUT_S):
                return None
        except OSError as exc:
            return f"{url}: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"{url}: unsupported scheme {parsed.scheme!r}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code  # 4xx still proves the server is up (MCP answers GET with 405/406)
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if status < 500 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    urls = argv or [u for u in [os.environ.get("DATAFLUX_HEALTHCHECK_URL", "")] if u]
    if not urls:
        print("healthcheck: no URL given and DATAFLUX_HEALTHCHECK_URL is empty", file=sys.stderr)
        return 1
    failures = [reason for reason in map(probe, urls) if reason]
    for reason in failures:
        print(f"unhealthy: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
