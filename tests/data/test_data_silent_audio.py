"""A silent or near-silent audio track is measured (dBFS), traced, warned about and put under missing_audio."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from toolkit.data.audio import DBFS_FLOOR
from toolkit.data.dataset import MediaDataset
from toolkit.data.demo_clips import MOTIONS, SHAPE_STYLES, render_frames
from toolkit.data.media import AudioTrack
from toolkit.data.video_writer import write_video
from toolkit.errors import DataError
from toolkit.trace import TraceConfig, init_tracer, reset_tracer


def _clip_with_audio(folder: Path, name: str, waveform: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frames = render_frames(SHAPE_STYLES[0], MOTIONS[0], num_frames=9, size=64, background=32, offset=0.0)
    path = folder / f"{name}.mp4"
    write_video(path, frames, 24, AudioTrack(waveform, 16000))
    path.with_suffix(".txt").write_text(f"{name} clip")
    return path


@pytest.fixture(scope="module")
def quiet_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quiet")
    samples = int(9 / 24 * 16000)
    hiss = 1e-4 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
    return {
        "zeros": _clip_with_audio(root / "zeros", "zeros", torch.zeros(1, samples)).parent,
        "hiss": _clip_with_audio(root / "hiss", "hiss", hiss).parent,
    }


@pytest.mark.parametrize("kind", ["zeros", "hiss"])
def test_silent_track_is_an_error_under_missing_audio_error(quiet_folders, kind):
    dataset = MediaDataset(quiet_folders[kind], num_frames=9, resolutions=[64], missing_audio="error")
    with pytest.raises(DataError) as raised:
        dataset[0]
    message = str(raised.value)
    assert message.startswith(f"{quiet_folders[kind] / (kind + '.mp4')}: the audio track is silent (RMS ")
    assert "below -60 dBFS); set missing_audio: silence" in message


def test_silent_track_is_traced_warned_and_trained_as_silence(quiet_folders, demo_folder, tmp_path, caplog):
    project_root = logging.getLogger("ltx2_trace")
    project_root.addHandler(caplog.handler)
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0), is_main_process=True)
    try:
        with caplog.at_level(logging.WARNING, logger="ltx2_trace"):
            quiet = MediaDataset(quiet_folders["zeros"], num_frames=9, resolutions=[64], missing_audio="silence")
            item = quiet[0]
            quiet[0]  # warned once per clip
            loud = MediaDataset(demo_folder, num_frames=9, resolutions=[64])[0]
    finally:
        project_root.removeHandler(caplog.handler)
        reset_tracer()
    assert item.audio_is_silence is True and item.audio_rms_dbfs == DBFS_FLOOR
    assert loud.audio_is_silence is False and -30.0 < loud.audio_rms_dbfs < 0.0
    # (a record can reach caplog twice: through the project root and through propagation)
    unique = {id(record): record for record in caplog.records}.values()
    warnings = [r.getMessage() for r in unique if "audio track is silent" in r.getMessage()]
    assert warnings == [f"{item.path}: the audio track is silent (RMS -120.0 dBFS, below -60 dBFS); trained as silence "
                        "(missing_audio: silence)"]
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    loads = [r["fields"] for r in records if r["type"] == "span_end" and r["name"] == "load_media"]
    assert [(f["audio_rms_dbfs"], f["audio_is_silence"]) for f in loads[:2]] == [(DBFS_FLOOR, True)] * 2
    assert loads[2]["audio_rms_dbfs"] == pytest.approx(loud.audio_rms_dbfs) and loads[2]["audio_is_silence"] is False
