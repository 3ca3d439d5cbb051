"""Files whose names or headers lie are refused with a reason code; every way in applies the same rules."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import media_factory as mf
import pytest
from click.testing import CliRunner

from dataflux_api.cli.main import cli
from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import probe_media
from dataflux_pipelines.media.sniff import check_claim
from dataflux_pipelines.settings import Settings

pytestmark = pytest.mark.reliability


def _lying_wav(path: Path, claimed: int = 2_000_000_000, seconds: float = 0.062) -> Path:
    rate = 16000
    samples = b"\0\0" * int(seconds * rate)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", claimed)
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + struct.pack("<I", claimed)
        + samples
    )
    return path


def test_json_named_wav_is_a_type_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    path.write_text(json.dumps({"not": "audio"}))
    probe = probe_media(path)
    with pytest.raises(MediaError) as info:
        check_claim(path.name, probe.media_type)
    assert info.value.reason is Reason.TYPE_MISMATCH and "audio" in info.value.message


def test_a_wav_header_claiming_gigabytes_over_62_ms_is_truncated(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        probe_media(_lying_wav(tmp_path / "lie.wav"))
    assert info.value.reason is Reason.TRUNCATED_MEDIA
    # An honest WAV of the same length passes.
    assert probe_media(mf.make_wav(tmp_path / "ok.wav")).duration is not None


def test_an_audio_only_mp4_is_accepted_with_a_visible_warning(tmp_path: Path) -> None:
    path = mf.make_audio_file(tmp_path / "talk.m4a", "aac", "ipod", seconds=2)
    renamed = path.rename(tmp_path / "talk.mp4")
    probe = probe_media(renamed)
    assert probe.media_type == "audio"
    warning = check_claim(renamed.name, probe.media_type)
    assert warning is not None and "only audio" in warning


def test_the_cli_refuses_empty_files_like_the_api(dataflux_env: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["ingest", "--json", str(empty)])
    assert result.exit_code != 0
    line = json.loads(result.output.strip().splitlines()[0])
    assert line["refused"] == "empty_file"
