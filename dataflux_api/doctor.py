"""`dataflux doctor`: what is installed, reachable and configured, and how to fix what is not."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dataflux_pipelines.settings import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    level: str = "error"  # "error" fails the doctor; "warning" is shown but does not

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PACKAGES = (
    "dagster",
    "dagster-webserver",
    "dagster-aws",
    "dagster-postgres",
    "lancedb",
    "kuzu",
    "duckdb",
    "polars",
    "pyarrow",
    "torch",
    "transformers",
    "decord2",
    "av",
    "pillow",
    "pypdf",
    "litestar",
    "mcp",
)


def check_versions() -> list[Check]:
    found = []
    missing = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    detail = f"python {platform.python_version()}; " + ", ".join(found)
    checks = [Check("versions", not missing, detail, "run `make setup`" if missing else "")]
    dagster_version = importlib.metadata.version("dagster") if "dagster" not in missing else None
    if dagster_version and dagster_version != "1.13.27":
        checks.append(
            Check(
                "dagster pin",
                False,
                f"dagster {dagster_version}",
                "pin dagster==1.13.27 with dagster-*==0.29.27",
            )
        )
    return checks


def check_stores(settings: Settings) -> list[Check]:
    from dataflux_pipelines.catalog import Catalog, table_names
    from dataflux_pipelines.objectstore import open_object_store

    checks = []
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        probe = settings.home / ".doctor-write-test"
        probe.write_text("ok")
        probe.unlink()
        checks.append(Check("home", True, f"{settings.home} is writable"))
    except OSError as exc:
        checks.append(
            Check("home", False, f"{settings.home}: {exc}", "set DATAFLUX_HOME to a writable folder")
        )
    try:
        store = open_object_store(settings)
        landing = sum(1 for _ in store.list("landing/"))
        key = ".doctor/write-test"
        store.put_bytes(key, b"ok")
        store.delete(key)
        checks.append(
            Check(
                "object store",
                True,
                f"{settings.object_store_url} reachable and writable; {landing} object(s) in landing",
            )
        )
    except Exception as exc:
        checks.append(
            Check(
                "object store",
                False,
                f"{settings.object_store_url}: {type(exc).__name__}: {exc}",
                "check DATAFLUX_OBJECT_STORE_URL, DATAFLUX_S3_ENDPOINT_URL and the S3 credentials",
            )
        )
    try:
        catalog = Catalog(settings, reader=True)
        counts = catalog.counts_by("status")
        tables = sorted(table_names(catalog.db))
        checks.append(
            Check("lancedb", True, f"{settings.lance_uri}: tables {tables}; assets by status {counts}")
        )
    except Exception as exc:
        checks.append(
            Check(
                "lancedb",
                False,
                f"{settings.lance_uri}: {type(exc).__name__}: {exc}",
                "check DATAFLUX_LANCE_URI",
            )
        )
    return checks


def check_dagster(settings: Settings) -> list[Check]:
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        return [
            Check(
                "dagster instance",
                False,
                f"{config} missing",
                "run `dataflux process` once or copy dagster_home/dagster.yaml there",
            )
        ]
    try:
        import dagster as dg

        os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            storage = type(instance.run_storage).__name__
            partitions = len(instance.get_dynamic_partitions("media_files"))
        return [
            Check(
                "dagster instance",
                True,
                f"{settings.dagster_home}: {storage}; {partitions} media partition(s)",
            )
        ]
    except Exception as exc:
        return [
            Check(
                "dagster instance",
                False,
                f"{type(exc).__name__}: {exc}",
                "check DAGSTER_HOME and its dagster.yaml",
            )
        ]


def check_models(settings: Settings) -> list[Check]:
    from dataflux_pipelines.models.registry import ModelRegistry

    status = ModelRegistry(settings).status(load=True)
    vision = status.get("vision") or {}
    checks = [
        Check("device", True, f"{status['device']} ({status['dtype']}) on {sys.platform}"),
        Check(
            "models",
            True,
            f"vision profile {vision.get('profile')} (space {vision.get('space')}, {vision.get('dim')}-d, "
            f"text-to-image {'on' if vision.get('text_to_image') else 'off'}); loaded: "
            + ", ".join(name for name, p in status["profiles"].items() if p["loaded"]),
        ),
    ]
    for reason in status["degraded"]:
        checks.append(
            Check(
                "model degraded",
                False,
                str(reason),
                "no model hub here: put the CLIP folder on disk and set DATAFLUX_CLIP_MODEL to it; "
                "until then text-to-image search is off and visual similarity uses the offline descriptor",
                level="warning",
            )
        )
    return checks


CHECKS: list[Callable[[Settings], list[Check]]] = [
    lambda s: check_versions(),
    check_stores,
    check_dagster,
    check_models,
]


def run_checks(settings: Settings) -> list[Check]:
    results: list[Check] = []
    for check in CHECKS:
        try:
            results.extend(check(settings))
        except Exception as exc:  # a broken check is itself a finding
            results.append(Check(getattr(check, "__name__", "check"), False, f"{type(exc).__name__}: {exc}"))
    return results
