"""numpy's BLAS runs on one thread in DataFlux processes (small products on busy cores), unless the user says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{first}
from threadpoolctl import threadpool_info
blas = [p for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"].replace("_", "")]
print(json.dumps([p["num_threads"] for p in blas]))
"""


def _blas_threads(first: str, env: dict[str, str]) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "first",
    ["import dataflux_pipelines, numpy", "import numpy, dataflux_pipelines", "import dataflux_api.app"],
)
def test_numpy_blas_gets_one_thread_whichever_loads_first(first: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    threads = _blas_threads(first, env)
    assert threads and set(threads) == {1}, threads


def test_a_users_own_openblas_setting_is_kept() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    assert set(_blas_threads("import numpy, dataflux_pipelines", env)) == {2}
