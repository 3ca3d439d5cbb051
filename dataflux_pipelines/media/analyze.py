"""One entry point per worker call: sniff and probe a file, or analyse it by media type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dataflux_pipelines.contract import MediaType
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.types import MediaAnalysis, Probe

if TYPE_CHECKING:
    from dataflux_pipelines.media.audio import Transcriber
    from dataflux_pipelines.settings import Settings


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

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalysisOptions:
        return cls(max_gif_frames=settings.max_gif_frames)


def sniff_and_probe(path: str) -> Probe:
    """The media type from the bytes plus the technical probe: the `media_file` asset's worker call."""
    return probe_media(Path(path))


def analyze_file(
    path: str, probe: Probe, options: AnalysisOptions, transcribe: Transcriber | None = None
) -> MediaAnalysis:
    """Segments and features of one file, by the media type its probe found."""
    media_type = probe.media_type
    if media_type == MediaType.IMAGE:
        from dataflux_pipelines.media.image import analyze_image

        return analyze_image(Path(path), probe, options)
    if media_type == MediaType.AUDIO:
        from dataflux_pipelines.media.audio import analyze_audio

        return analyze_audio(path, probe, options, transcribe=transcribe)
    if media_type == MediaType.DOCUMENT:
        from dataflux_pipelines.media.documents import analyze_document

        return analyze_document(path, probe, options)
    if media_type == MediaType.VIDEO:
        # Imported here: the video module is separate and pulls in shot detection.
        from dataflux_pipelines.media.video import analyze_video

        analysis = analyze_video(path, probe, options)
        if probe.audio_codec:
            _add_soundtrack(analysis, path, probe, options)
        return analysis
    raise MediaError(Reason.UNSUPPORTED_MEDIA_TYPE, f"no analysis for media type {media_type!r}")


def _add_soundtrack(analysis: MediaAnalysis, path: str, probe: Probe, options: AnalysisOptions) -> None:
    """Speech / music / silence passages of a video's soundtrack, as `audio` segments beside the shots.

    The soundtrack is analysed in streaming passes (one passage held at a time), so any length is segmented.
    """
    from dataflux_pipelines.media.audio import analyze_audio

    try:
        audio = analyze_audio(path, probe, options)
    except MediaError as exc:
        # A video whose soundtrack cannot be decoded still has its shots; record why there are no passages.
        analysis.summary["soundtrack"] = {"passages": None, "skipped": str(exc)}
        return
    analysis.segments.extend(audio.segments)
    analysis.summary["soundtrack"] = audio.summary
