"""Plain data that media analysis returns: picklable, so it crosses the decode-worker boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflux_pipelines.settings import Settings


@dataclass
class Probe:
    """What the bytes are and their technical facts (the `media_file` asset's probe)."""

    media_type: str  # records.MediaType value
    mime_type: str
    extension: str  # canonical extension with the dot, e.g. ".mp4"
    duration: float | None = None  # seconds
    fps: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bit_rate: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    page_count: int | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentDraft:
    """One segment before it has an id: a shot, an audio passage, an image (tile) or a text chunk."""

    segment_type: str  # records.SegmentType value
    sequence_number: int
    start_time: float | None = None
    end_time: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    confidence: float = 1.0
    text: str | None = None
    transcript: str | None = None
    # transcript / text segments: language, words with times or lines with boxes, the model's version
    language: str | None = None
    words: list[dict[str, Any]] | None = None
    source_model: str | None = None
    # Representative frame as JPEG: written to the object store and embedded by the vision model,
    # so video is decoded once for both shot detection and embedding.
    keyframe_jpeg: bytes | None = None
    thumbnail_jpeg: bytes | None = None
    # Shots: the other sampled frames (technical_features["sample_frames"] holds their indices), compared
    # with other videos' frames so that a trimmed copy of the shot is still found.
    sample_frames_jpeg: list[bytes] = field(default_factory=list)
    visual_features: dict[str, Any] = field(default_factory=dict)
    style_features: dict[str, Any] = field(default_factory=dict)
    technical_features: dict[str, Any] = field(default_factory=dict)
    audio_features: dict[str, Any] = field(default_factory=dict)
    semantic_features: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass
class TextFrame:
    """A picture to read for on-screen text: a video frame (time span, frame, shot), an image, or the
    embedded image of a scanned PDF page (page)."""

    jpeg: bytes
    start_time: float | None = None
    end_time: float | None = None
    frame: int | None = None
    page: int | None = None
    shot: int | None = None  # sequence number of the shot it was taken from


@dataclass
class MediaAnalysis:
    """Everything analysis found in one file."""

    media_type: str
    segments: list[SegmentDraft]
    summary: dict[str, Any] = field(default_factory=dict)  # per-asset: pacing, colour summary, ...
    transitions: list[dict[str, Any]] = field(default_factory=list)
    thumbnail_jpeg: bytes | None = None  # the asset's own thumbnail
    # Read and transcribed in the parent process (models load once there): pictures for OCR and the
    # (start, end) seconds of the audio worth transcribing.
    text_frames: list[TextFrame] = field(default_factory=list)
    transcript_windows: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of media analysis; plain values so the options cross the decode-worker boundary."""

    max_gif_frames: int = 300
    tile_threshold: int = 4096  # images with a longer side than this also get tile segments
    tile_size: int = 2048
    max_tiles: int = 64
    keyframe_side: int = 512
    thumbnail_side: int = 256
    chunk_words: int = 225
    chunk_overlap_words: int = 30
    min_audio_segment_s: float = 2.0
    max_audio_segment_s: float = 30.0
    shot_detector: str = "fused"  # "fused" | "learned" | "classical" (fused/learned fall back to classical)
    # Bounded work per file: one hostile file must not hold a run hostage.
    max_segments: int = 1000
    max_text_chars: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalysisOptions:
        return cls(
            max_gif_frames=settings.max_gif_frames,
            max_segments=settings.max_segments_per_file,
            max_text_chars=settings.max_text_chars,
        )
