"""Content-derived identities: the same bytes are the same asset, whatever their name."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

# Fixed namespace so ids are stable across machines and releases.
DATAFLUX_NAMESPACE = uuid.UUID("6f1d3c2e-9a57-5b8e-8d0c-2a4f7e1b9c33")
_CHUNK = 1024 * 1024


def asset_id_for_hash(sha256_hex: str) -> str:
    """The asset id (a deterministic UUID) for a SHA-256 of the content."""
    return str(uuid.uuid5(DATAFLUX_NAMESPACE, f"sha256:{sha256_hex.lower()}"))


def segment_id_for(asset_id: str, kind: str, sequence: int) -> str:
    """Segment ids derive from asset, kind and order, so reprocessing overwrites in place."""
    return str(uuid.uuid5(DATAFLUX_NAMESPACE, f"segment:{asset_id}:{kind}:{sequence}"))


def collection_id_for(name: str, auto_generated: bool) -> str:
    return str(uuid.uuid5(DATAFLUX_NAMESPACE, f"collection:{int(auto_generated)}:{name}"))


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    return sha256_chunks(iter(lambda: stream.read(_CHUNK), b""))


def sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False
