"""`dataflux search` asks a running API for the same library (warm models) instead of loading them itself."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import SECRET, seed_processed_asset, served_api, token
from services import free_port

from dataflux_pipelines.settings import REPO_ROOT, Settings

# Runs the CLI as a user's shell would, then says which heavy modules the process imported.
CLI = """
import json, sys
from dataflux_api.cli.main import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except BaseException as exc:
    print(f"error: {exc}", file=sys.stderr)
    code = 1
else:
    code = 0
print(json.dumps({m: m in sys.modules for m in ("torch", "lancedb", "dataflux_api.service")}), file=sys.stderr)
sys.exit(code)
"""


@dataclasses.dataclass
class Api:
    url: str
    settings: Settings
    asset_id: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A real API server (JWT mode) on a free loopback port, over a library with one processed asset."""
    home = tmp_path_factory.mktemp("cli-search")
    env = {
        "DATAFLUX_HOME": str(home / "home"),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0",
        "DATAFLUX_JWT_SECRET": SECRET,
    }
    settings = Settings.from_env(env)
    asset = seed_processed_asset(settings, content=b"sunset clip bytes")
    with served_api(settings) as url:
        urllib.request.urlopen(f"{url}/health", timeout=120).close()  # opens the stores
        yield Api(url, settings, asset["id"])


def _cli(settings: Settings, *args: str, **extra: str) -> tuple[int, dict, str, dict[str, bool]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLUX_")}
    env.update(
        DATAFLUX_HOME=str(settings.home),
        DAGSTER_HOME=str(settings.dagster_home),
        DATAFLUX_LANCE_READ_CONSISTENCY_S="0",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
        **extra,
    )
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "search", *args], env=env, capture_output=True, text=True, timeout=300
    )
    *messages, modules = proc.stderr.strip().splitlines()
    body = json.loads(proc.stdout) if proc.returncode == 0 and "--json" in args else {}
    return proc.returncode, body, "\n".join(messages), json.loads(modules)


def _search(settings: Settings, **extra: str) -> tuple[list[str], str, dict[str, bool]]:
    """Asset ids `dataflux search sunset --json` found (any score), its stderr, the modules it loaded."""
    code, body, messages, loaded = _cli(settings, "sunset", "--json", "--min-score", "0", **extra)
    assert code == 0, messages
    return [r["id"] for r in body["results"]], messages, loaded


def test_search_is_answered_by_the_running_api_without_loading_models_or_stores(api: Api) -> None:
    found, messages, loaded = _search(
        api.settings, DATAFLUX_API_URL=api.url, DATAFLUX_API_TOKEN=token(["search"])
    )
    assert found == [api.asset_id]
    assert "note:" not in messages
    assert loaded == {"torch": False, "lancedb": False, "dataflux_api.service": False}


def test_a_token_the_api_refuses_is_an_error_naming_the_setting_not_a_silent_local_search(api: Api) -> None:
    code, _, messages, loaded = _cli(api.settings, "sunset", DATAFLUX_API_URL=api.url)
    assert code == 1
    assert "missing_token" in messages and "DATAFLUX_API_TOKEN" in messages
    assert not loaded["torch"]
    code, _, messages, _ = _cli(
        api.settings, "sunset", DATAFLUX_API_URL=api.url, DATAFLUX_API_TOKEN=token(["assets:read"])
    )
    assert code == 1 and "permission" in messages, messages


def test_an_api_serving_another_library_is_not_asked(api: Api, tmp_path: Path) -> None:
    other = Settings.from_env(
        {"DATAFLUX_HOME": str(tmp_path / "other"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    )
    asset = seed_processed_asset(other, content=b"another library's sunset")
    found, messages, loaded = _search(other, DATAFLUX_API_URL=api.url)
    assert "serves another library" in messages and "searching in this process" in messages
    assert found == [asset["id"]]
    assert loaded["dataflux_api.service"]


def test_with_no_api_listening_the_cli_says_so_and_searches_in_process(api: Api) -> None:
    found, messages, _ = _search(api.settings, DATAFLUX_API_URL=f"http://127.0.0.1:{free_port()}")
    assert "no DataFlux API answered" in messages
    assert found == [api.asset_id]
