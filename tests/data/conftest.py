"""Clips built once per session with the demo generator (no files from outside the repo)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from toolkit.data.demo_clips import MOTIONS, SHAPE_STYLES, make_demo_clips, render_frames
from toolkit.data.media import AudioTrack
from toolkit.data.video_writer import write_video


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 17-frame 64x64 clips at 24 fps with 16 kHz mono tones, and captions."""
    folder = tmp_path_factory.mktemp("demo")
    make_demo_clips(folder, count=4, num_frames=17, size=64, fps=24, sample_rate=16000)
    return folder


@pytest.fixture(scope="session")
def clip_30fps_44k_stereo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames 96x64 (portrait) at 30 fps, 440 Hz left / 660 Hz right at 44.1 kHz."""
    path = tmp_path_factory.mktemp("stereo") / "stereo.mp4"
    frames = render_frames(SHAPE_STYLES[0], MOTIONS[0], num_frames=20, size=96, background=32, offset=0.0)
    frames = frames[:, :, 16:80].contiguous()  # 96 high, 64 wide
    sample_rate = 44100
    times = torch.arange(int(20 / 30 * sample_rate), dtype=torch.float64) / sample_rate
    waveform = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * times), 0.5 * torch.sin(2 * math.pi * 660 * times)])
    write_video(path, frames, 30, AudioTrack(waveform.to(torch.float32), sample_rate))
    return path


@pytest.fixture(scope="session")
def silent_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 17-frame clip with no audio stream, captioned."""
    folder = tmp_path_factory.mktemp("silent")
    return make_demo_clips(folder, count=1, with_audio=False)[0].video_path

