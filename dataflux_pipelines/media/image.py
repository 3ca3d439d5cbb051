"""Image analysis: one segment per still image (plus tiles for very large ones), frame groups for
animated GIF/WebP, each with visual and style features, a keyframe and a thumbnail."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.features import (
    ANALYSIS_SIDE,
    encode_jpeg,
    resize_long_side,
    style_labels,
    visual_features,
)
from dataflux_pipelines.media.probe import count_frames, open_image, read_exif
from dataflux_pipelines.media.types import MediaAnalysis, Probe, SegmentDraft, TextFrame
from dataflux_pipelines.records import MediaType, SegmentType

if TYPE_CHECKING:
    from dataflux_pipelines.media.types import AnalysisOptions

# Animated images: frames are sampled down to `max_gif_frames`; GIF frames depend on the previous
# ones, so sampling still decodes every frame up to the last sample. Past this multiple of the cap
# the file is refused instead, which bounds decode work at HARD_FRAME_FACTOR × the cap.
HARD_FRAME_FACTOR = 10
# Mean absolute difference (0–255) of 16×16 previews above which a sampled frame starts a new group.
FRAME_CHANGE_THRESHOLD = 18.0


def to_rgb_array(image: Any) -> np.ndarray:
    """A Pillow image as RGB uint8: transparency over white, 16-bit and float modes rescaled."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _image_segment(
    rgb: np.ndarray, segment_type: str, sequence: int, options: AnalysisOptions, technical: dict[str, Any]
) -> SegmentDraft:
    # One downscale of the full picture serves the keyframe, the thumbnail and (at the default 512 px,
    # ANALYSIS_SIDE) the features: each used to resize the full picture itself, ~16 ms apiece for a
    # 1920x1080 photo here, a third of an image's analysis.
    keyframe = resize_long_side(rgb, options.keyframe_side)
    features = visual_features(keyframe if options.keyframe_side >= ANALYSIS_SIDE else rgb)
    return SegmentDraft(
        segment_type=segment_type,
        sequence_number=sequence,
        keyframe_jpeg=encode_jpeg(keyframe, options.keyframe_side),
        thumbnail_jpeg=encode_jpeg(
            keyframe if options.thumbnail_side <= options.keyframe_side else rgb, options.thumbnail_side
        ),
        visual_features=features,
        style_features=style_labels(features),
        technical_features=technical,
    )


def _decode_error(exc: Exception) -> MediaError:
    text = str(exc)
    reason = Reason.TRUNCATED_MEDIA if "truncated" in text.lower() else Reason.CORRUPT_MEDIA
    return MediaError(reason, f"the image data cannot be decoded: {text}")


def _tile_grid(width: int, height: int, tile: int, max_tiles: int) -> list[tuple[int, int, int, int]]:
    while math.ceil(width / tile) * math.ceil(height / tile) > max_tiles:
        tile *= 2
    return [
        (x, y, min(tile, width - x), min(tile, height - y))
        for y in range(0, height, tile)
        for x in range(0, width, tile)
    ]


def _still(image: Any, exif: dict[str, Any], options: AnalysisOptions) -> MediaAnalysis:
    from PIL import ImageOps

    width, height = image.size
    tiled = max(width, height) > options.tile_threshold
    if not tiled and image.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: features and keyframes never need more.
        image.draft("RGB", (options.keyframe_side * 2, options.keyframe_side * 2))
    try:
        rgb = to_rgb_array(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise _decode_error(exc) from exc
    technical = {
        "width": width,
        "height": height,
        "mode": image.mode,
        "format": image.format,
        "megapixels": round(width * height / 1e6, 3),
        "has_alpha": image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info,
        "exif": exif,
    }
    segments = [_image_segment(rgb, SegmentType.IMAGE, 0, options, technical)]
    if tiled:
        # exif_transpose may have swapped the axes: tile what was decoded.
        grid = _tile_grid(rgb.shape[1], rgb.shape[0], options.tile_size, options.max_tiles)
        for i, (x, y, w, h) in enumerate(grid, start=1):
            tile = np.ascontiguousarray(rgb[y : y + h, x : x + w])
            segments.append(
                _image_segment(
                    tile, SegmentType.TILE, i, options, {"bbox": [x, y, w, h], "tile_of": [width, height]}
                )
            )
    head = segments[0]
    from dataflux_pipelines.media.screen_text import IMAGE_SIDE, encode_picture

    return MediaAnalysis(
        media_type=MediaType.IMAGE,
        segments=segments,
        # The whole picture is read for text at up to IMAGE_SIDE px (tiles would cut lines in two).
        text_frames=[TextFrame(encode_picture(rgb, IMAGE_SIDE))],
        summary={
            "width": width,
            "height": height,
            "tiles": len(segments) - 1,
            "palette": head.visual_features["palette"],
            "style": head.style_features,
        },
        thumbnail_jpeg=head.thumbnail_jpeg,
    )


def _animated(image: Any, frame_count: int, options: AnalysisOptions) -> MediaAnalysis:
    """Sample up to `max_gif_frames` frames, group runs of similar frames, one segment per group."""
    cap = options.max_gif_frames
    wanted = sorted({round(i) for i in np.linspace(0, frame_count - 1, min(frame_count, cap))})
    wanted_set = set(wanted)
    samples: list[tuple[int, float, float, np.ndarray]] = []  # index, start s, duration s, rgb
    clock = 0.0
    try:
        for index in range(wanted[-1] + 1):
            image.seek(index)
            image.load()  # WebP reports a frame's duration only once the frame is loaded
            duration = float(image.info.get("duration") or 100) / 1000.0
            if index in wanted_set:
                rgb = resize_long_side(to_rgb_array(image), options.keyframe_side)
                samples.append((index, clock, duration, rgb))
            clock += duration
    except EOFError:
        pass  # the container had fewer frames than counted: analyse what is there
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise _decode_error(exc) from exc
    if not samples:
        raise MediaError(Reason.CORRUPT_MEDIA, "no frame of the animated image could be decoded")
    groups: list[list[tuple[int, float, float, np.ndarray]]] = [[samples[0]]]
    previous = _preview(samples[0][3])
    for sample in samples[1:]:
        current = _preview(sample[3])
        if float(np.abs(current - previous).mean()) > FRAME_CHANGE_THRESHOLD:
            groups.append([])
        groups[-1].append(sample)
        previous = current
    segments = []
    for i, group in enumerate(groups):
        key = group[len(group) // 2]
        last = group[-1]
        segment = _image_segment(
            key[3],
            SegmentType.IMAGE,
            i,
            options,
            {
                "frame_index": key[0],
                "sampled_frames": len(group),
                "width": image.size[0],
                "height": image.size[1],
            },
        )
        segment.start_time, segment.end_time = round(group[0][1], 3), round(last[1] + last[2], 3)
        segment.start_frame, segment.end_frame = group[0][0], last[0]
        segments.append(segment)
    return MediaAnalysis(
        media_type=MediaType.IMAGE,
        segments=segments,
        summary={
            "width": image.size[0],
            "height": image.size[1],
            "animated": True,
            "frame_count": frame_count,
            "sampled_frames": len(samples),
            "duration": round(clock, 3) if samples[-1][0] == frame_count - 1 else None,
            "palette": segments[0].visual_features["palette"],
            "style": segments[0].style_features,
        },
        thumbnail_jpeg=segments[0].thumbnail_jpeg,
        # Each frame group is read at its keyframe, over the group's time span.
        text_frames=[
            TextFrame(s.keyframe_jpeg, s.start_time, s.end_time, s.start_frame, shot=s.sequence_number)
            for s in segments
            if s.keyframe_jpeg
        ],
    )


def _preview(rgb: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((16, 16), Image.Resampling.BOX), dtype=np.float32)


def analyze_image(path: Path | str, probe: Probe, options: AnalysisOptions) -> MediaAnalysis:
    """Segments and features of a still or animated image; refuses bombs and huge animations."""
    path = Path(path)
    image = open_image(path)
    with image:
        exif = probe.exif
        if not exif:
            try:
                exif = read_exif(image)
            except (OSError, SyntaxError, ValueError, struct.error):
                exif = {}  # the probe already recorded an unreadable EXIF block
        hard_limit = options.max_gif_frames * HARD_FRAME_FACTOR
        frames = count_frames(path, probe.mime_type, image, stop_after=hard_limit)
        if frames > hard_limit:
            raise MediaError(
                Reason.TOO_MANY_FRAMES,
                f"animated image has more than {hard_limit} frames (the limit is {HARD_FRAME_FACTOR}× "
                f"max_gif_frames={options.max_gif_frames})",
            )
        if frames > 1 and probe.mime_type in ("image/gif", "image/webp", "image/png"):
            return _animated(image, frames, options)
        # Multi-page TIFFs and the like: the first page is the image.
        return _still(image, exif, options)
