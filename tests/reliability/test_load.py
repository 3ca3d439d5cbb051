"""A real API process under load: concurrent duplicate uploads land each file once, and searches from
many clients keep answering while `dataflux process` writes (errors counted, p50/p99 recorded)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from audit import audit
from hostile import ordinary_files
from services import free_port, stop_process, wait_for_http
from tally import TALLY, full_run

from dataflux_pipelines.settings import Settings

# The full run (100 files, 20 clients) takes longer than the suite's 600 s per-test limit on 2 cores.
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(3600 if full_run() else 600)]

CLIENTS, SECONDS, FILES = (20, 60.0, 100) if full_run() else (4, 15.0, 4)
QUERIES = ["field notes", "a picture", "chord", "scene with motion", "harbour", "video"]


@pytest.fixture
def api(dataflux_env: Settings) -> Iterator[str]:
    """`dataflux api` as its own process on a free loopback port, models loaded lazily."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataflux_api.cli.main", "api", "--no-warm", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/health", "the API")
        yield url
        if proc.poll() is not None:
            TALLY.add("crashes")
        assert proc.poll() is None, "the API process died under load"
    finally:
        stop_process(proc, timeout=20)


def test_concurrent_uploads_of_the_same_files_land_each_once_then_searches_survive_processing(
    api: str, dataflux_env: Settings, tmp_path: Path
) -> None:
    files = ordinary_files(tmp_path / "files", FILES)
    payloads = [(p.name, p.read_bytes()) for p in files[:10]]
    copies = 10

    def upload(item: tuple[str, bytes]) -> int:
        with httpx.Client(timeout=120) as client:
            return client.post(f"{api}/api/v1/assets", files={"file": item}).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = Counter(pool.map(upload, payloads * copies))
    TALLY.add("inputs_tried", len(payloads) * copies)
    TALLY.add("server_errors_5xx", sum(n for status, n in answers.items() if status >= 500))
    assert answers == {201: len(payloads), 409: len(payloads) * (copies - 1)}, answers
    with httpx.Client(timeout=60) as client:
        for path in files[10:]:
            assert (
                client.post(
                    f"{api}/api/v1/assets", files={"file": (path.name, path.read_bytes())}
                ).status_code
                == 201
            )
        assert client.get(f"{api}/api/v1/assets").json()["pagination"]["total"] == len(files)

    log = tmp_path / "process.log"
    with log.open("wb") as out:  # a file, not a pipe: nobody reads while the clients run
        worker = subprocess.Popen(
            [sys.executable, "-m", "dataflux_api.cli.main", "process"],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def count(status: str) -> int:
        page = httpx.get(f"{api}/api/v1/assets", params={"status": status, "limit": 1}, timeout=60).json()
        return int(page["pagination"]["total"])

    # The window opens once the run writes (a file is processing) and lasts until the run ends (at
    # least SECONDS), so every search meets the writes and the files' completion.
    deadline = time.monotonic() + 600
    while count("processing") == 0:
        assert worker.poll() is None, "the run ended before any file was seen processing"
        assert time.monotonic() < deadline, "no file started processing in 600 s"
        time.sleep(0.2)
    done_before = count("completed")
    opened = time.monotonic()
    stop = opened + SECONDS

    def client_loop(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            i = n
            while time.monotonic() < stop or worker.poll() is None:
                started = time.perf_counter()
                try:
                    response = client.post(f"{api}/api/v1/search", json={"query": QUERIES[i % len(QUERIES)]})
                    ok = response.status_code == 200
                    problem = f"{response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, problem = False, f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    if not ok:
                        errors.append(problem)
                i += 1

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = time.monotonic() - opened
    done_during = count("completed") - done_before
    assert worker.wait(timeout=3600) == 0, log.read_text(errors="replace")[-3000:]
    TALLY.searches += len(latencies)
    TALLY.search_errors += len(errors)
    TALLY.latencies_ms += latencies
    TALLY.load = (
        f"{CLIENTS} clients for {window:.0f} s, from the run's first write to its end "
        f"({len(files)} files, {done_during} completed inside the window)"
    )
    result = audit(dataflux_env)
    TALLY.add("duplicates", len(result.duplicates))
    TALLY.add("stuck_files", len(result.stuck))
    assert not errors, errors[:5]
    assert result.clean and {r["status"] for r in result.assets.values()} == {"completed"}
    assert len(result.assets) == len(files)
