"""Shared fixtures: every test gets its own DATAFLUX_HOME and DAGSTER_HOME under tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Real PostgreSQL and S3-server fixtures (tests/ is on sys.path: helpers import as plain modules).
from services import postgres_database, postgres_server, s3_bucket, s3_server  # noqa: F401

from dataflux_pipelines.settings import REPO_ROOT, Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        action="store_true",
        help="append the reliability suite's table to BENCHMARKS.md (bench/reliability.py sets it)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Nothing may reach a model hub from the test suite; CLIP then runs on the offline profile.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def dataflux_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A private DataFlux home and Dagster home, exported like a user's shell would."""
    home = tmp_path / "home"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DATAFLUX_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for name in list(os.environ):
        if name.startswith("DATAFLUX_") and name != "DATAFLUX_HOME":
            monkeypatch.delenv(name)
    yield Settings.from_env()


@pytest.fixture
def settings(dataflux_env: Settings) -> Settings:
    return dataflux_env


@pytest.fixture
def instance(dataflux_env: Settings):
    """A real Dagster instance (SQLite) in the test's DAGSTER_HOME."""
    import dagster as dg

    with dg.instance_for_test(temp_dir=str(dataflux_env.dagster_home)) as instance:
        yield instance
