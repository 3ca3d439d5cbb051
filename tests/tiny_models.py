"""Tiny CLIP and Whisper models built from configs (random weights, tokenizers built locally), and
generated pictures to feed them.

Models are saved with `save_pretrained`, so tests load them through the same `from_pretrained` path users take.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tokenizers.pre_tokenizers import ByteLevel

WHISPER_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]


def build_tiny_clip(folder: Path, projection_dim: int = 16, seed: int = 0) -> Path:
    """A 61k-parameter CLIP with a byte-level BPE tokenizer; returns the folder."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = [("c", "a"), ("ca", "r</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_whisper(folder: Path, seed: int = 0) -> Path:
    """A tiny Whisper (1 encoder + 1 decoder layer) with a byte-level tokenizer and 80-bin features."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab: dict[str, int] = {}
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIAL_TOKENS})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in WHISPER_SPECIAL_TOKENS}
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    )
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=16,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        max_length=24,
        is_multilingual=False,
        begin_suppress_tokens=[],
        suppress_tokens=[],
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def textured_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture with structure at several scales (gratings, shapes, grain), distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(3):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.02, 0.2), rng.uniform(0, 6.3)
        wave = 0.5 + 0.5 * np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * freq + phase)
        img += wave[..., None] * rng.uniform(0, 1, 3)
    pil = Image.fromarray((img / img.max() * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, x0 + int(rng.integers(10, 120)), y0 + int(rng.integers(10, 120))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    grain = np.asarray(pil).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
    return Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8))


def near_duplicate(
    image: Image.Image, crop: float = 0.10, scale: float = 0.6, quality: int = 60
) -> Image.Image:
    """The same picture cropped by `crop` of its area's sides, resized and JPEG re-encoded."""
    w, h = image.size
    dx, dy = int(w * crop / 2), int(h * crop / 2)
    smaller = image.crop((dx, dy, w - dx, h - dy)).resize(
        (int(w * scale), int(h * scale)), Image.Resampling.BILINEAR
    )
    buf = io.BytesIO()
    smaller.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()
