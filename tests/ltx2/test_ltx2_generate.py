"""generate_single_image on the tiny LTX-2: an .mp4 with the asked-for frames and an audio track, seeded."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from extensions_built_in.diffusion_models.ltx2.LTX2Model import GenerationSettings
from toolkit.data.media import probe_media

SETTINGS = GenerationSettings(width=64, height=32, num_frames=9, fps=24, steps=3, guidance_scale=1.0, seed=1)


def decode(path) -> tuple[np.ndarray, dict]:
    """Every video frame as (T, H, W, 3) uint8, and the audio stream's facts."""
    with av.open(str(path)) as container:
        audio_stream = container.streams.audio[0]
        audio = {"sample_rate": audio_stream.sample_rate, "channels": audio_stream.channels}
        video = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    with av.open(str(path)) as container:
        audio["samples"] = sum(frame.samples for frame in container.decode(audio=0))
    return video, audio


@pytest.fixture(scope="module")
def clips(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    first = tiny_model.generate_single_image("a red square", folder / "seed1.mp4", SETTINGS)
    again = tiny_model.generate_single_image("a red square", folder / "seed1_again.mp4", SETTINGS)
    other = tiny_model.generate_single_image("a red square", folder / "seed2.mp4", replace(SETTINGS, seed=2))
    return first, again, other


def test_clip_has_the_configured_frames_size_and_audio(clips, tiny_model):
    clip = clips[0]
    assert clip.path.is_file() and clip.path.suffix == ".mp4"
    assert (clip.num_frames, clip.height, clip.width) == (9, 32, 64)
    video, audio = decode(clip.path)
    assert video.shape == (9, 32, 64, 3)
    assert audio["sample_rate"] == clip.sample_rate == tiny_model.vocoder.config.output_sampling_rate == 16000
    assert audio["channels"] == 2
    assert audio["samples"] > 0
    info = probe_media(clip.path)
    assert (info.width, info.height, info.has_audio) == (64, 32, True)
    assert info.fps == pytest.approx(24)
    assert not list(clip.path.parent.glob(".*.tmp*"))  # the temporary file was renamed into place


def test_same_seed_gives_identical_frames(clips):
    first, again, _ = clips
    first_video, _ = decode(first.path)
    again_video, _ = decode(again.path)
    assert np.array_equal(first_video, again_video)


def test_different_seed_gives_different_frames(clips):
    first, _, other = clips
    first_video, _ = decode(first.path)
    other_video, _ = decode(other.path)
    assert np.abs(first_video.astype(np.int16) - other_video.astype(np.int16)).mean() > 1.0


def test_classifier_free_guidance_clip(tiny_model, tmp_path):
    settings = replace(SETTINGS, guidance_scale=3.0, negative_prompt="blurry", num_frames=17, width=32)
    clip = tiny_model.generate_single_image("a blue circle", tmp_path / "cfg.mp4", settings)
    video, audio = decode(clip.path)
    assert video.shape == (17, 32, 32, 3)
    assert audio["sample_rate"] == 16000
