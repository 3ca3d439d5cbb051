"""Shared pieces of the REST API tests: settings for a tmp home, tokens, and catalog rows written by the real writers."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pyarrow as pa
from litestar.testing import TestClient
from PIL import Image
from services import free_port

from dataflux_api.auth import create_token
from dataflux_pipelines import layout, records
from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.identity import asset_id_for_hash, segment_id_for, sha256_chunks
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.settings import REPO_ROOT, Settings

SECRET = "test-secret-" + "k" * 56  # 68 bytes: long enough for HS512 too


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a private home under tmp_path; never the process environment."""
    env = {
        "DATAFLUX_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        # Zero staleness: a test that writes through one handle reads through another at once.
        "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0",
    }
    return dataclasses.replace(Settings.from_env(env), **overrides)


def private_homes(mp: Any, root: Path) -> Settings:
    """Export a fresh DataFlux home and Dagster home under `root` (through a pytest MonkeyPatch), as
    module-scoped fixtures need; every other DATAFLUX_ variable of the caller's shell is dropped."""
    mp.setenv("DATAFLUX_HOME", str(root / "home"))
    mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    for name in list(os.environ):
        if name.startswith("DATAFLUX_") and name != "DATAFLUX_HOME":
            mp.delenv(name)
    (root / "dagster_home").mkdir()
    shutil.copyfile(REPO_ROOT / "dagster_home" / "dagster.yaml", root / "dagster_home" / "dagster.yaml")
    return Settings.from_env()


def token(permissions: list[str], *, secret: str = SECRET, ttl: int = 600, subject: str = "tester") -> str:
    return create_token(secret, subject, permissions, ttl)


def bearer(permissions: list[str], **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(permissions, **kwargs)}"}


def raw_token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def png_bytes(seed: int = 0, size: tuple[int, int] = (32, 24)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def seed_processed_asset(
    settings: Settings,
    *,
    content: bytes,
    filename: str = "clip.mp4",
    mime_type: str = "video/mp4",
    media_type: str = "video",
    segments: int = 2,
    collection_id: str | None = None,
) -> dict[str, Any]:
    """A completed asset as the pipeline leaves it: original, thumbnails, keyframes, catalog and segment rows, vectors."""
    store = open_object_store(settings)
    catalog = Catalog(settings)
    asset_id = asset_id_for_hash(sha256_chunks([content]))
    original = layout.original_key(asset_id, Path(filename).suffix)
    store.put_bytes(original, content)
    thumb = layout.derived_key(asset_id, "thumbnail.jpg")
    store.put_bytes(thumb, png_bytes(1))
    seg_rows = []
    for n in range(segments):
        seg_id = segment_id_for(asset_id, "shot", n)
        keyframe = layout.derived_key(asset_id, f"keyframes/{n:05d}.jpg")
        seg_thumb = layout.derived_key(asset_id, f"thumbnails/{n:05d}.jpg")
        store.put_bytes(keyframe, png_bytes(10 + n))
        store.put_bytes(seg_thumb, png_bytes(20 + n))
        seg_rows.append(
            {
                "id": seg_id,
                "asset_id": asset_id,
                "segment_type": "shot",
                "sequence_number": n,
                "media_type": media_type,
                "mime_type": mime_type,
                "filename": filename,
                "start_time": float(n),
                "end_time": float(n + 1),
                "duration": 1.0,
                "confidence_score": 0.9,
                "concepts": ["sunset"],
                "search_text": f"shot {n} of a sunset",
                "keyframe_path": keyframe,
                "thumbnail_path": seg_thumb,
                "visual_features": {"brightness": 0.5 + n / 10},
            }
        )
    catalog.upsert_assets(
        [
            {
                "id": asset_id,
                "filename": filename,
                "file_hash": sha256_chunks([content]),
                "file_size": len(content),
                "mime_type": mime_type,
                "media_type": media_type,
                "status": "completed",
                "storage_path": original,
                "thumbnail_path": thumb,
                "priority": 5,
                "collection_id": collection_id,
                "segment_count": segments,
                "metadata": {"codec": "h264"},
            }
        ]
    )
    catalog.replace_segments(asset_id, seg_rows)
    schema = records.vector_table_schema(4)
    vectors = catalog.db.create_table(
        layout.vector_table_name("vision", "test space"), schema=schema, exist_ok=True
    )
    vectors.add(
        pa.Table.from_pylist(
            [
                {
                    "segment_id": row["id"],
                    "asset_id": asset_id,
                    "media_type": media_type,
                    "segment_type": "shot",
                    "vector": [1.0, 0.0, 0.0, float(i)],
                    "model": "test",
                    "model_version": "1",
                    "created_at": dt.datetime.now(dt.UTC),
                }
                for i, row in enumerate(seg_rows)
            ],
            schema=schema,
        )
    )
    return {"id": asset_id, "segments": [r["id"] for r in seg_rows], "original": original, "thumbnail": thumb}


# A raw MCP streamable-HTTP exchange: the headers the transport requires and the first message of a session.
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


LOCAL_URL = "http://127.0.0.1:8000"  # a loopback client: the request policy refuses unknown Host names


@contextlib.contextmanager
def api_client(settings: Settings, **app_kwargs: Any) -> Iterator[TestClient]:
    """The REST app over HTTP for these settings, as a loopback client sees it."""
    from dataflux_api.app import create_app

    with TestClient(
        app=create_app(settings, **app_kwargs), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as c:
        yield c


@contextlib.contextmanager
def served_api(settings: Settings) -> Iterator[str]:
    """The REST app behind a real uvicorn on a free loopback port, configured as `dataflux api` configures
    it; yields the base URL."""
    import threading
    import time

    import uvicorn

    from dataflux_api.app import create_app
    from dataflux_api.cli.common import http_server_config

    port = free_port()
    server = uvicorn.Server(http_server_config(create_app(settings), settings, "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
