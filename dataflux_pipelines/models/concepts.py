"""Concept labels for segments: CLIP zero-shot over a curated vocabulary, or measured features offline."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from dataflux_pipelines.models.clip import ClipEncoder
from dataflux_pipelines.models.registry import ModelRegistry

# Curated for media libraries: what is in the frame, where, and how it is shot.
OBJECTS = [
    "person",
    "group of people",
    "face",
    "child",
    "crowd",
    "dog",
    "cat",
    "horse",
    "bird",
    "fish",
    "car",
    "truck",
    "bus",
    "bicycle",
    "motorcycle",
    "train",
    "airplane",
    "boat",
    "ship",
    "building",
    "house",
    "bridge",
    "road",
    "street sign",
    "traffic light",
    "tree",
    "flower",
    "grass",
    "mountain",
    "river",
    "lake",
    "ocean",
    "beach",
    "sky",
    "clouds",
    "sun",
    "moon",
    "snow",
    "rain",
    "fire",
    "smoke",
    "food",
    "drink",
    "table",
    "chair",
    "sofa",
    "bed",
    "computer",
    "laptop",
    "phone",
    "screen",
    "television",
    "book",
    "document",
    "text",
    "chart",
    "map",
    "logo",
    "painting",
    "sculpture",
    "musical instrument",
    "guitar",
    "piano",
    "microphone",
    "ball",
    "toy",
    "clock",
    "bottle",
    "cup",
    "bag",
    "shoe",
    "clothing",
    "uniform",
    "flag",
]
SCENES = [
    "city",
    "skyline",
    "countryside",
    "forest",
    "desert",
    "field",
    "park",
    "garden",
    "harbor",
    "airport",
    "train station",
    "highway",
    "parking lot",
    "office",
    "classroom",
    "kitchen",
    "living room",
    "bedroom",
    "restaurant",
    "bar",
    "shop",
    "supermarket",
    "factory",
    "warehouse",
    "laboratory",
    "hospital",
    "church",
    "museum",
    "stadium",
    "concert",
    "stage",
    "studio",
    "news broadcast",
    "interview",
    "sports game",
    "wedding",
    "party",
    "meeting",
    "presentation",
]
SETTINGS = [
    "indoors",
    "outdoors",
    "daytime",
    "night",
    "sunset",
    "underwater",
    "aerial view",
    "black and white",
    "crowded",
    "empty",
    "cartoon",
    "animation",
    "screenshot",
    "diagram",
]
SHOT_TYPES = [
    "close-up",
    "extreme close-up",
    "medium shot",
    "wide shot",
    "establishing shot",
    "over-the-shoulder shot",
    "point of view shot",
    "tracking shot",
    "static shot",
    "title card",
]
VOCABULARY: list[str] = list(dict.fromkeys(OBJECTS + SCENES + SETTINGS + SHOT_TYPES))

PROMPT_TEMPLATES = [
    "a photo of {}.",
    "a video frame of {}.",
    "a picture showing {}.",
    "a still image of {}.",
]

# An English stop list for keyword concepts; German function words too, since the seed corpus mixes both.
STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves one two three may might must shall
    us via per etc page chapter figure table section near like many much well even back still new
    der die das und ist nicht ein eine einer eines einem einen zu den dem des von mit auf für im
    in an als auch es sich wie bei aus nach oder aber wird werden wurde sind war hat haben kann
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_WORD_RE = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


def _require_clip(registry: ModelRegistry) -> ClipEncoder:
    clip = registry.clip
    if clip is None:
        raise RuntimeError("zero-shot concepts need CLIP: " + "; ".join(registry.degraded))
    return clip


def label_matrix(registry: ModelRegistry) -> np.ndarray:
    """CLIP text embeddings of the vocabulary (prompt-ensembled), (labels, D), computed once per registry."""
    clip = _require_clip(registry)

    def build() -> np.ndarray:
        prompts = [t.format(label) for label in VOCABULARY for t in PROMPT_TEMPLATES]
        emb = clip.embed_texts(prompts).reshape(len(VOCABULARY), len(PROMPT_TEMPLATES), -1).mean(axis=1)
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    return registry.memo(f"concepts:{clip.version}", build)


def zero_shot_concepts(
    registry: ModelRegistry, image_vectors: np.ndarray, top_k: int = 5, min_confidence: float = 0.1
) -> list[list[tuple[str, float]]]:
    """Per image vector, the vocabulary labels CLIP rates likeliest (softmax with CLIP's logit scale)."""
    if len(image_vectors) == 0:
        return []
    labels = label_matrix(registry)
    logits = _require_clip(registry).logit_scale * (np.asarray(image_vectors, dtype=np.float32) @ labels.T)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    out: list[list[tuple[str, float]]] = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        out.append([(VOCABULARY[i], round(float(row[i]), 4)) for i in order if row[i] >= min_confidence])
    return out


def keywords(text: str, top_k: int = 5) -> list[tuple[str, float]]:
    """The most frequent content words of a text (stop words removed), scored 0..1 by log frequency."""
    words = [w.lower() for w in _WORD_RE.findall(text or "")]
    counts = Counter(w for w in words if w not in STOP_WORDS)
    if not counts:
        return []
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    top = math.log1p(ranked[0][1])
    # Saturating score: a word seen as often as the top word scores 0.9, a single mention at least 0.3.
    return [(w, round(0.3 + 0.6 * math.log1p(c) / top, 3)) for w, c in ranked if c >= 1]


def _ramp(value: float, start: float, full: float) -> float:
    """0 at `start`, 1 at `full` (either direction), clipped."""
    if full == start:
        return 1.0
    return float(min(1.0, max(0.0, (value - start) / (full - start))))


def feature_concepts(features: Mapping[str, Any], media_type: str) -> list[tuple[str, float]]:
    """Concepts from measured features, for the offline profile and for non-visual segments.

    Keys read (all optional): `brightness` (0..1), `colorfulness` (Hasler–Süsstrunk, 0..~150),
    `shot_duration` (seconds, video), `audio_class` ("speech"/"music"/"silence"/...) with
    `audio_class_confidence`, and `text` (document chunk or transcript) for keywords.
    """
    out: dict[str, float] = {}

    def add(label: str, confidence: float) -> None:
        if confidence >= 0.3:
            out[label] = max(out.get(label, 0.0), round(min(confidence, 1.0), 3))

    if media_type in ("image", "video"):
        brightness = features.get("brightness")
        if brightness is not None and brightness < 0.3:
            add("dark", 0.3 + 0.7 * _ramp(brightness, 0.3, 0.1))
        if brightness is not None and brightness > 0.65:
            add("bright", 0.3 + 0.7 * _ramp(brightness, 0.65, 0.85))
        colourfulness = features.get("colorfulness")
        if colourfulness is not None and colourfulness >= 50.0:
            add("colorful", 0.3 + 0.7 * _ramp(colourfulness, 50.0, 100.0))
        if colourfulness is not None and colourfulness <= 8.0:
            add("monochrome", 0.3 + 0.7 * _ramp(colourfulness, 8.0, 1.0))
    if media_type == "video":
        duration = features.get("shot_duration")
        if duration is not None and duration > 0:
            if duration < 2.0:
                add("fast-paced", 0.3 + 0.7 * _ramp(duration, 2.0, 0.5))
            elif duration > 8.0:
                add("slow-paced", 0.3 + 0.7 * _ramp(duration, 8.0, 20.0))
    audio_class = features.get("audio_class")
    if audio_class and media_type in ("audio", "video"):
        add(str(audio_class).lower(), float(features.get("audio_class_confidence", 1.0)))
    text = features.get("text")
    if text:
        for word, score in keywords(str(text)):
            add(word, score)
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def merge_concepts(*groups: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """One list from several sources, keeping each label's highest confidence."""
    best: dict[str, float] = {}
    for group in groups:
        for label, confidence in group:
            best[label] = max(best.get(label, 0.0), confidence)
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
