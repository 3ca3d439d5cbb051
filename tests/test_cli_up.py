"""`dataflux up` starts the Dagster UI + daemon, the API and the MCP server, and Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
from services import free_port

from dataflux_pipelines.settings import Settings


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_up_serves_every_url_it_prints_and_stops_everything_on_ctrl_c(settings: Settings) -> None:
    ports = {
        "DATAFLUX_DAGSTER_PORT": free_port(),
        "DATAFLUX_API_PORT": free_port(),
        "DATAFLUX_MCP_PORT": free_port(),
    }
    env = dict(os.environ, HF_HUB_OFFLINE="1", **{k: str(v) for k, v in ports.items()})
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflux_api.cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    urls = {
        "dagster": f"http://127.0.0.1:{ports['DATAFLUX_DAGSTER_PORT']}/server_info",
        "api": f"http://127.0.0.1:{ports['DATAFLUX_API_PORT']}/health",
        "mcp": f"http://127.0.0.1:{ports['DATAFLUX_MCP_PORT']}/mcp",
    }
    try:
        deadline = time.monotonic() + 120
        seen: dict[str, int | None] = {}
        while time.monotonic() < deadline and not all(seen.get(k) for k in urls):
            seen = {name: _status(url) for name, url in urls.items()}
            time.sleep(1)
        assert seen["dagster"] == 200 and seen["api"] == 200
        assert seen["mcp"] in (400, 405, 406)  # the MCP endpoint answers; a bare GET is not a session
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 0, output
    assert "stopped." in output and all(f"127.0.0.1:{p}" in output for p in ports.values())
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
