"""How every model is found and loaded: a local folder, the hub cache, then the hub; versions and devices.

Resolution order for a role is the registry's (an explicit setting, then the installed offline
package, then the hub when reachable); this module holds the shared mechanics each model module uses.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Errors that mean "this model cannot be used here" (no hub, missing or broken files), not bugs.
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, ImportError)

ImageInput = Image.Image | np.ndarray


@dataclass(frozen=True)
class ModelProfile:
    """Where a model comes from and how it runs."""

    name: str
    model_id_or_path: str
    revision: str | None
    device: str
    batch_size: int
    dtype: str  # "float16", "bfloat16" or "float32" (whisper: "int8")


def select_device(requested: str = "auto") -> str:
    """CUDA, then MPS, then CPU, unless a device is named."""
    import torch

    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX), as oneDNN
    reports it. Without it torch emulates bfloat16 on the CPU, slower than float32."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private check: a torch without it gets float32
        return False


def reduced_precision(device: str) -> str:
    """The fastest precision a model that tolerates it runs in: float16 on CUDA, bfloat16 on a CPU
    with native bfloat16, float32 elsewhere (MPS included)."""
    if device.startswith("cuda"):
        return "float16"
    return "bfloat16" if device == "cpu" and cpu_has_native_bf16() else "float32"


def folder_fingerprint(folder: Path) -> str:
    """config.json content plus weight file names and sizes: changes when the model does."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".pt", ".msgpack", ".h5"}:
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:12]


def _resolved_folder(model_id: str, revision: str | None) -> Path | None:
    """The local folder a model id loads from: the folder itself, or its hub cache snapshot."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent
    return None


def model_version(model_id: str, revision: str | None) -> str:
    """`id@revision#fingerprint`: what a stored vector records so a model change makes it stale."""
    folder = _resolved_folder(model_id, revision)
    fingerprint = folder_fingerprint(folder) if folder is not None else "unresolved"
    return f"{model_id}@{revision or 'default'}#{fingerprint}"


def space_name(model_id: str) -> str:
    return Path(model_id.rstrip("/")).name or model_id


def check_obtainable(ident: str, revision: str | None) -> None:
    """Raise OSError at once when a model can come from nowhere: not a local folder, not in the hub
    cache, and the hub is off (HF_HUB_OFFLINE) or unreachable. A loader calls this before its heavy
    imports: offline, the CLIP attempt imported transformers' image stack (8-13 s on 2 busy cores,
    every `dataflux process`) only for `from_pretrained` to find no files."""
    folder = Path(ident).expanduser()
    if folder.is_dir():
        return
    if folder.is_absolute() or ident.startswith((".", "~")):
        raise OSError(f"there is no model folder at {folder}")
    if _resolved_folder(ident, revision) is not None:
        return
    import huggingface_hub.constants

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    if offline or huggingface_hub.constants.HF_HUB_OFFLINE:
        raise OSError(f"{ident} is not in the Hugging Face cache and the hub is off (HF_HUB_OFFLINE)")
    _check_hub_reachable()


def from_pretrained(loader: Any, ident: str, revision: str | None, **kwargs: Any) -> Any:
    """Load from a local folder, else from the hub cache first (no network round trips), then the hub."""
    folder = Path(ident).expanduser()
    if folder.is_dir():
        return loader.from_pretrained(str(folder), **kwargs)
    if folder.is_absolute() or ident.startswith((".", "~")):
        raise OSError(f"there is no model folder at {folder}")
    try:
        return loader.from_pretrained(ident, revision=revision, local_files_only=True, **kwargs)
    except OSError:
        _check_hub_reachable()
        return loader.from_pretrained(ident, revision=revision, **kwargs)


@functools.cache
def _hub_unreachable_reason() -> str | None:
    """One quick TCP probe per process: without it huggingface_hub retries for ~30 s before failing."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return None  # transformers reports offline mode itself, at once
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as exc:
        return f"the model hub {host}:{port} is unreachable ({exc})"


def _check_hub_reachable() -> None:
    reason = _hub_unreachable_reason()
    if reason:
        raise OSError(reason)


def summarize_error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first[:200]}"


def to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
