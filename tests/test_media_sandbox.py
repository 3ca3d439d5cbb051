"""The decode worker: results, limits, crashes, and hostile files failing with their reason codes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.analyze import AnalysisOptions, analyze_file, sniff_and_probe
from dataflux_pipelines.media.sandbox import DecodeWorker, run_isolated

# --- functions the worker runs (module level: the spawned child imports them by name) -----------


def double(x: int) -> int:
    return 2 * x


def worker_pid() -> int:
    return os.getpid()


def heavy_modules_loaded() -> list[str]:
    return sorted(name for name in ("torch", "transformers", "dagster", "lancedb") if name in sys.modules)


def hang_forever() -> None:
    threading.Event().wait()


def segfault() -> None:
    # Address 0 can be mapped in sandboxed kernels, so deliver the signal a bad pointer would raise.
    os.kill(os.getpid(), signal.SIGSEGV)


def abort() -> None:
    os.abort()  # how decord's C++ code dies (terminate → SIGABRT)


def allocate(mb: int) -> int:
    block = np.ones(mb * 1024 * 1024, np.uint8)
    return int(block[::4096].sum())


_KEPT: list[bytes] = []


def churn_heap(mb: int) -> int:
    """Allocate `mb` MiB in 4 KiB blocks (malloc's heap, below its mmap threshold), keep one block made
    last (so the heap's top cannot shrink on its own), free the rest: what a decode leaves behind."""
    blocks = [bytes(4096) + bytes([i % 256]) for i in range(mb * 256)]
    _KEPT.append(bytes(4096) + b"keep")
    del blocks
    return len(_KEPT)


def resident_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def raise_media_error() -> None:
    raise MediaError(Reason.CORRUPT_MEDIA, "the bytes after the header are garbage")


def raise_value_error() -> None:
    raise ValueError("a plain bug, not a media problem")


def probe_and_analyze(path: str) -> tuple[str, int]:
    probe = sniff_and_probe(path)
    analysis = analyze_file(path, probe, AnalysisOptions(max_gif_frames=20))
    return probe.media_type, len(analysis.segments)


# --- tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker():
    with DecodeWorker(timeout_s=60, memory_mb=2048) as w:
        yield w


def test_a_call_returns_the_result_from_one_persistent_child_process(worker):
    assert worker.call(double, 21) == 42
    first = worker.call(worker_pid)
    assert first != os.getpid()
    assert worker.call(worker_pid) == first


def test_the_worker_does_not_import_torch_or_dagster(worker):
    assert worker.call(heavy_modules_loaded) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_the_worker_hands_freed_heap_back_after_each_call():
    with DecodeWorker(timeout_s=60, memory_mb=2048) as w:
        before = w.call(resident_mib)
        w.call(churn_heap, 256)
        # Without a trim the freed 256 MiB stay resident behind the kept block (measured: ~+260 MiB).
        assert w.call(resident_mib) - before < 64


def test_a_hanging_decoder_is_stopped_with_decode_timeout_and_the_next_call_works(worker):
    before = worker.call(worker_pid)
    with pytest.raises(MediaError) as info:
        worker.call(hang_forever, timeout_s=0.5)
    assert info.value.reason is Reason.DECODE_TIMEOUT
    assert "hang_forever did not finish within 0.5 s" in info.value.message
    assert worker.call(double, 2) == 4
    assert worker.call(worker_pid) != before


@pytest.mark.parametrize(("crash", "signal_name"), [(segfault, "SIGSEGV"), (abort, "SIGABRT")])
def test_a_crashing_decoder_fails_with_decoder_crashed_and_the_next_call_works(worker, crash, signal_name):
    with pytest.raises(MediaError) as info:
        worker.call(crash)
    assert info.value.reason is Reason.DECODER_CRASHED
    assert signal_name in info.value.message
    assert worker.call(double, 3) == 6


def test_allocating_past_the_memory_limit_fails_with_decode_memory_limit():
    with DecodeWorker(timeout_s=60, memory_mb=1024) as small:
        assert small.call(allocate, 64) == 64 * 256
        with pytest.raises(MediaError) as info:
            small.call(allocate, 3000)
        assert info.value.reason is Reason.DECODE_MEMORY_LIMIT
        assert "1024 MiB" in info.value.message
        assert small.call(allocate, 64) == 64 * 256


def test_a_media_error_in_the_child_arrives_as_the_same_media_error(worker):
    with pytest.raises(MediaError) as info:
        worker.call(raise_media_error)
    assert info.value.reason is Reason.CORRUPT_MEDIA
    assert info.value.message == "the bytes after the header are garbage"


def test_other_exceptions_keep_their_type_and_carry_the_child_traceback(worker):
    with pytest.raises(ValueError, match="a plain bug") as info:
        worker.call(raise_value_error)
    assert any("raise_value_error" in note for note in info.value.__notes__)


def test_run_isolated_runs_one_call_in_a_fresh_process():
    assert run_isolated(double, 5, timeout_s=60, memory_mb=1024) == 10
    assert run_isolated(worker_pid, timeout_s=60, memory_mb=1024) != os.getpid()


def _hostile_files(tmp: Path) -> list[tuple[Path, Reason]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    return [
        (empty, Reason.EMPTY_FILE),
        (mf.make_elf_named_mp4(tmp / "movie.mp4"), Reason.UNSUPPORTED_MEDIA_TYPE),
        (mf.make_truncated_mp4(tmp / "cut.mp4"), Reason.TRUNCATED_MEDIA),
        (mf.make_truncated_mp4(tmp / "cut_faststart.mp4", faststart=True), Reason.TRUNCATED_MEDIA),
        (mf.make_bomb_png(tmp / "bomb.png"), Reason.DECOMPRESSION_BOMB),
        (mf.make_many_frame_gif(tmp / "endless.gif", 10_000), Reason.TOO_MANY_FRAMES),
        (mf.make_looping_pdf(tmp / "loop.pdf"), Reason.CORRUPT_MEDIA),
        (mf.make_encrypted_pdf(tmp / "locked.pdf"), Reason.ENCRYPTED_DOCUMENT),
        (mf.make_pdf(tmp / "scanned.pdf", [""]), Reason.NO_TEXT),
    ]


def test_each_hostile_file_fails_with_its_reason_while_good_files_in_the_same_worker_succeed(
    worker, tmp_path
):
    good = mf.make_image(tmp_path / "good.jpg", "JPEG")
    failures = {}
    for path, expected in _hostile_files(tmp_path):
        with pytest.raises(MediaError) as info:
            worker.call(probe_and_analyze, str(path))
        failures[path.name] = info.value.reason
        assert info.value.reason is expected, f"{path.name}: {info.value}"
        assert worker.call(probe_and_analyze, str(good)) == ("image", 1)
    assert len(failures) == 9
