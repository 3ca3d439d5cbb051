"""Decode workers started and warmed up ahead of their pipeline (`dataflux process` start-up)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import media_factory as mf
import psutil
import pytest

from dataflux_pipelines.catalog import Catalog
from dataflux_pipelines.landing import ingest_paths
from dataflux_pipelines.media import sandbox
from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file, sniff_and_probe, warm_up
from dataflux_pipelines.media.sandbox import DecodeWorker, close_spares, prestart, take_spare
from dataflux_pipelines.objectstore import open_object_store
from dataflux_pipelines.pipeline import MediaPipeline, prestart_decoders
from dataflux_pipelines.settings import Settings

# --- functions the worker runs (module level: the spawned child imports them by name) -----------


def settle_warm_up() -> list[tuple[str, object, object]]:
    """Wait for this child's warm-up threads; the TransNetV2 models then loaded (their cache keys)."""
    for thread in threading.enumerate():
        if thread.name == "dataflux-analysis-warm-up":
            thread.join()
    transnet = sys.modules.get("dataflux_pipelines.models.transnet")
    return sorted(transnet._CACHE) if transnet is not None else []


def torch_loaded() -> bool:
    return "torch" in sys.modules


def probe_and_analyze(path: str) -> int:
    return len(analyze_file(path, sniff_and_probe(path), AnalysisOptions()).segments)


# --- tests -----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_spares_left():
    yield
    close_spares()
    assert not sandbox._spares


def test_a_video_warm_up_loads_the_shot_model_once_and_an_image_warm_up_loads_no_torch(tmp_path: Path):
    video = mf.make_video(tmp_path / "clip.mp4", seconds=2)
    with DecodeWorker(timeout_s=120, memory_mb=4096) as worker:
        assert worker.call(warm_up, ["image", "document"], AnalysisOptions()) is None
        assert worker.call(settle_warm_up) == []
        assert worker.call(torch_loaded) is False  # the image path never needs torch in the worker
        worker.call(warm_up, ["video"], AnalysisOptions())
        assert worker.call(settle_warm_up) == [("cpu", None, None)]
        assert worker.call(probe_and_analyze, str(video)) >= 1
        assert worker.call(settle_warm_up) == [("cpu", None, None)]  # the analysis used the warm model


def test_a_classical_detector_warm_up_loads_no_model():
    with DecodeWorker(timeout_s=120, memory_mb=4096) as worker:
        worker.call(warm_up, ["video"], AnalysisOptions(shot_detector="classical"))
        assert worker.call(settle_warm_up) == []


def test_a_prestarted_worker_goes_to_the_first_taker_with_the_same_limits():
    [started] = prestart(1, timeout_s=90, memory_mb=2048)
    assert take_spare(60, 2048) is None  # other limits: not this worker
    assert take_spare(90, 1024) is None
    taken = take_spare(90, 2048)
    assert taken is started
    assert take_spare(90, 2048) is None  # taken once
    try:
        assert taken.call(torch_loaded) is False
    finally:
        taken.close()


def test_spares_nobody_took_are_closed_with_their_processes():
    [worker] = prestart(
        1, timeout_s=90, memory_mb=2048, warm=warm_up, warm_args=(["image"], AnalysisOptions())
    )
    worker.start()
    pid = worker.pid
    assert pid is not None and psutil.pid_exists(pid)
    close_spares()
    assert take_spare(90, 2048) is None
    assert worker.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _prestarted() -> None:
    """Wait until the prestart thread has sent its calls (a taker's first call may otherwise go first)."""
    for thread in list(sandbox._prestarts):
        thread.join()


def _land(settings: Settings, *paths: Path) -> None:
    list(ingest_paths(open_object_store(settings), Catalog(settings), paths))


def test_process_prestarts_a_worker_warmed_for_the_landing_videos_and_the_pipeline_takes_it(
    settings: Settings, tmp_path: Path
):
    _land(
        settings, mf.make_video(tmp_path / "clip.mp4", seconds=2), mf.make_image(tmp_path / "a.jpg", "JPEG")
    )
    prestart_decoders(settings)
    _prestarted()
    with MediaPipeline(settings) as pipeline:
        assert sandbox._spares, "a worker was prestarted"
        spare = sandbox._spares[0]
        with pipeline.decoder() as worker:
            assert worker is spare  # taken by the pipeline, not started anew
            assert worker.call(settle_warm_up) == [("cpu", None, None)]
        assert not sandbox._spares


def test_process_prestarts_nothing_for_an_empty_landing_and_no_model_for_images(
    settings: Settings, tmp_path: Path
):
    prestart_decoders(settings)  # no catalog yet
    assert not sandbox._spares
    _land(settings, mf.make_image(tmp_path / "a.jpg", "JPEG"))
    prestart_decoders(settings)
    _prestarted()
    [spare] = sandbox._spares
    assert spare.call(settle_warm_up) == []
    assert spare.call(torch_loaded) is False


def test_each_stage_warms_its_workers_for_the_batch_media_types(settings: Settings):
    with MediaPipeline(settings) as pipeline:
        pipeline.start_decoders(2, ["image", None])
        with pipeline.decoder() as worker:
            assert worker.call(settle_warm_up) == []
            assert worker.call(torch_loaded) is False
        pipeline.start_decoders(2, ["video", "image"])  # e.g. `segments` once the probes named a video
        with pipeline.decoder() as worker:
            assert worker.call(settle_warm_up) == [("cpu", None, None)]
