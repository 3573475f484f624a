"""Fault suite, media half: what the files hold decides what trains, and every surprise is said by name.

Images from their true mode and bit depth, captions without a byte-order mark, files that
cannot be read skipped and counted, caches that record what they were computed from, clips
shorter than `num_frames`, 5.1 audio, and what the check before loading finds in the media
(exit 2 without importing torch, or notices printed dry run or not). The media are built here,
tiny, with PyAV, Pillow and numpy. One run (run.py's main() in this process) trains on all the
recoverable faults at once and reads back from its trace what reached the model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import run
from tests.faults.conftest import copy_clips, run_here, run_probe, training_job, write_yaml
from toolkit.config import DatasetConfig
from toolkit.data.audio import match_channels
from toolkit.data.cache import LatentCache, TextEmbeddingCache
from toolkit.data.clip_rules import spread_frame_indices
from toolkit.data.dataset import MediaDataset
from toolkit.data.files import read_caption
from toolkit.data.images import image_to_rgb
from toolkit.data.media import AudioTrack, read_video
from toolkit.data.video_writer import write_video
from toolkit.errors import DataError
from toolkit.job import Job

GRAY_16 = 32896  # 0x8080: 128 in 8 bits, mid-gray; Pillow's own convert("RGB") clips it to 255 (white)
SAMPLE_RATE = 16000


def _clip(path: Path, frames: int, channels: int = 1, caption: str = "a gray frame") -> Path:
    """A 64x64 clip of `frames` frames at 24 fps with a 440 Hz tone in its first audio channel only."""
    pixels = torch.linspace(40, 200, frames).round().to(torch.uint8).view(-1, 1, 1, 1).expand(frames, 64, 64, 3)
    times = torch.arange(max(1, round(frames / 24 * SAMPLE_RATE))) / SAMPLE_RATE
    waveform = torch.zeros(channels, times.numel())
    waveform[0] = 0.5 * torch.sin(2 * math.pi * 440 * times)
    write_video(path, pixels.contiguous(), 24, AudioTrack(waveform, SAMPLE_RATE))
    path.with_suffix(".txt").write_text(caption)
    return path


def _gray16_png(path: Path) -> Path:
    Image.fromarray(np.full((64, 64), GRAY_16, dtype=np.uint16)).save(path)
    path.with_suffix(".txt").write_text("a gray frame")
    return path


def _pixel(path: Path) -> list[int]:
    """The image's top-left pixel as the dataset reads it (what the VAE then encodes)."""
    return read_video(path, num_frames=1).frames[0, 0, 0].tolist()


# --- images: each trains as a viewer shows it -------------------------------------------------


def _saved(image: Image.Image, name: str, **options) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        image.save(path, **options)
        return path

    return write


_PALETTE = Image.new("P", (4, 4), 1)
_PALETTE.putpalette([255, 0, 0, 0, 0, 255])

IMAGE_CASES = {
    # mode: (write the file, the pixel a viewer shows)
    "I;16 png": (lambda folder: _gray16_png(folder / "gray16.png"), [128, 128, 128]),
    "P with a transparent entry": (_saved(_PALETTE, "palette.png", transparency=1), [255, 255, 255]),
    "P opaque": (_saved(_PALETTE.copy(), "palette_opaque.png"), [0, 0, 255]),
    "RGBA half transparent": (_saved(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "rgba.png"), [255, 127, 127]),
    "LA transparent": (_saved(Image.new("LA", (4, 4), (0, 0)), "la.png"), [255, 255, 255]),
    "1-bit": (_saved(Image.new("1", (4, 4), 1), "bits.png"), [255, 255, 255]),
    "CMYK jpeg": (_saved(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "cmyk.jpg", quality=100), [0, 255, 255]),
}


@pytest.mark.parametrize("mode", IMAGE_CASES, ids=list(IMAGE_CASES))
def test_an_image_trains_as_a_viewer_shows_it(mode: str, tmp_path: Path) -> None:
    write, shown = IMAGE_CASES[mode]
    assert _pixel(write(tmp_path)) == pytest.approx(shown, abs=2)  # JPEG rounds CMYK a little


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_sixteen_bit_gray_in_other_layouts_is_scaled_not_clipped(mode: str) -> None:
    values = np.full((4, 4), GRAY_16, dtype=np.uint16)
    image = (
        Image.frombytes("I;16B", (4, 4), values.astype(">u2").tobytes())
        if mode == "I;16B"
        else Image.fromarray(values.astype(np.int32))
    )
    assert image.mode == mode
    assert image_to_rgb(image)[0, 0].tolist() == [128, 128, 128]


# --- captions, unreadable files, caches ------------------------------------------------------------


def test_a_caption_with_a_byte_order_mark_reaches_the_model_without_it(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "a.mp4", 9)
    clip.with_suffix(".txt").write_bytes("\ufeffa red square".encode())
    assert read_caption(clip, "txt") == "a red square"
    assert MediaDataset(tmp_path, num_frames=9, resolutions=[64])[0].caption == "a red square"


def test_a_dangling_link_is_skipped_by_name_and_counted(tmp_path: Path, project_logs) -> None:
    _clip(tmp_path / "a.mp4", 9)
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "moved" / "gone.mp4")
    dataset = MediaDataset(tmp_path, num_frames=9, resolutions=[64])
    assert dataset.paths == [tmp_path / "a.mp4"]
    [(path, reason)] = dataset.skipped
    assert path == tmp_path / "gone.mp4" and f"a link to {tmp_path / 'moved' / 'gone.mp4'}, which does not exist" in reason
    assert f"skipped {tmp_path / 'gone.mp4'}: " in project_logs.text
    (tmp_path / "a.mp4").unlink()
    with pytest.raises(DataError, match=r"no usable clips or images \(1 media files, 1 skipped\)"):
        MediaDataset(tmp_path, num_frames=9, resolutions=[64])


def test_a_file_this_user_cannot_read_is_skipped_by_name(tmp_path: Path, monkeypatch) -> None:
    _clip(tmp_path / "a.mp4", 9)
    locked = _clip(tmp_path / "locked.mp4", 9)
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: answer as the kernel would for another user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    dataset = MediaDataset(tmp_path, num_frames=9, resolutions=[64])
    assert dataset.paths == [tmp_path / "a.mp4"]
    assert dataset.skipped == [(locked, f"{locked}: not readable by this user (permission denied); fix or remove it")]


def test_a_latent_entry_recorded_for_another_clip_is_encoded_again(tmp_path: Path, project_logs) -> None:
    first, second = _clip(tmp_path / "first.mp4", 1), _clip(tmp_path / "second.mp4", 5)
    cache, settings = LatentCache(tmp_path / "cache"), {"frames": 9}
    cache.get_or_compute(first, settings, lambda: {"latents": torch.zeros(2)})
    # An entry copied over the second clip's (a cache folder carried between runs, a renamed clip).
    cache.entry_path(first, settings).replace(cache.entry_path(second, settings))
    latents = cache.get_or_compute(second, settings, lambda: {"latents": torch.ones(2)})
    assert latents["latents"].tolist() == [1.0, 1.0] and cache.misses == 2 and cache.hits == 0
    assert f"latent cache entry {cache.entry_path(second, settings)} was not computed for this clip" in project_logs.text
    assert f"source: recorded {first.resolve()}, not {second.resolve()}" in project_logs.text
    assert cache.get_or_compute(second, settings, lambda: {"latents": torch.full((2,), 7.0)})["latents"].tolist() == [1.0, 1.0]


def test_a_latent_entry_recorded_with_other_settings_is_encoded_again(tmp_path: Path, project_logs) -> None:
    clip = _clip(tmp_path / "clip.mp4", 1)
    cache = LatentCache(tmp_path / "cache")
    entry = cache.entry_path(clip, {"frames": 9})
    save_file({"latents": torch.zeros(2)}, str(entry), metadata={"source": str(clip.resolve()), "settings": '{"frames": 17}'})
    latents = cache.get_or_compute(clip, {"frames": 9}, lambda: {"latents": torch.ones(2)})
    assert latents["latents"].tolist() == [1.0, 1.0]
    assert f"{entry} was not computed for this clip" in project_logs.text
    assert 'settings: recorded {"frames": 17}, not {"frames": 9}' in project_logs.text


def test_a_text_embedding_entry_recorded_for_another_caption_is_encoded_again(tmp_path: Path, project_logs) -> None:
    cache, settings = TextEmbeddingCache(tmp_path / "cache"), {"encoder": "gemma"}
    cache.get_or_compute("a red square", settings, lambda: {"embeds": torch.zeros(2)})
    cache.entry_path("a red square", settings).replace(cache.entry_path("a blue circle", settings))
    embeds = cache.get_or_compute("a blue circle", settings, lambda: {"embeds": torch.ones(2)})
    assert embeds["embeds"].tolist() == [1.0, 1.0]
    assert "caption: recorded a red square, not a blue circle" in project_logs.text


# --- short clips and 5.1 audio ----------------------------------------------------------------------


def test_a_clip_shorter_than_num_frames_is_spread_with_a_notice(tmp_path: Path) -> None:
    short = _clip(tmp_path / "short.mp4", 5)
    dataset = MediaDataset(tmp_path, num_frames=9, resolutions=[64], shrink_video_to_frames=False)
    [notice] = dataset.notices
    assert (notice.path, notice.key) == (short, "num_frames")
    assert notice.text.startswith("has 5 frames at 24 fps, fewer than num_frames=9: its 9 frames are spread")
    item = dataset[0]
    assert item.video.shape == (3, 9, 64, 64) and item.frame_selection == "spread"
    assert item.fps == 48.0  # 9 frames spread over 5 keep real time
    expected = torch.linspace(40, 200, 5).round()[spread_frame_indices(9, 5)] / 127.5 - 1
    assert torch.allclose(item.video[:, :, 32, 32].mean(0), expected, atol=0.05)  # H.264 rounds a little


def test_a_one_frame_video_trains_as_a_still_with_a_notice(tmp_path: Path) -> None:
    still = _clip(tmp_path / "still.mp4", 1)
    dataset = MediaDataset(tmp_path, num_frames=9, resolutions=[64], shrink_video_to_frames=True)
    [notice] = dataset.notices
    assert (notice.path, notice.key) == (still, "num_frames") and "a video of 1 frame: trained as a still" in notice.text
    assert dataset[0].video.shape == (3, 1, 64, 64)


def test_six_channel_audio_is_downmixed_to_stereo_with_a_notice(tmp_path: Path) -> None:
    surround = _clip(tmp_path / "surround.mp4", 9, channels=6)
    dataset = MediaDataset(tmp_path, num_frames=9, resolutions=[64], audio_sample_rate=SAMPLE_RATE)
    [notice] = dataset.notices
    assert (notice.path, notice.key) == (surround, "audio")
    assert notice.text.startswith("6-channel audio (5.1) is downmixed to stereo")
    audio = dataset[0].audio
    assert audio.shape == (2, 6000)
    left, right = audio.pow(2).mean(dim=1).sqrt().tolist()
    assert left > 0.2 and right < 0.01  # the tone was in the front-left channel only


def test_every_hint_names_a_real_dataset_key(tmp_path: Path) -> None:
    _clip(tmp_path / "surround.mp4", 1, channels=6)
    notices = MediaDataset(tmp_path, num_frames=9, resolutions=[256], audio_sample_rate=SAMPLE_RATE).notices
    assert {notice.key for notice in notices} == {"num_frames", "audio", "resolution"}
    assert {notice.key for notice in notices} <= set(DatasetConfig.model_fields)
    with pytest.raises(DataError) as raised:  # a waveform decoding did not downmix: its hint too
        match_channels(torch.zeros(6, 4), 2, "clip.mp4")
    assert "audio: false" in str(raised.value) and "audio_channels" not in str(raised.value)


# --- found before loading -------------------------------------------------------------------------


def _dataset_job(tmp_path: Path, clips: Path, **dataset) -> Path:
    job = training_job(tmp_path, clips)
    job["config"]["process"][0]["datasets"][0].update(dataset)
    return write_yaml(tmp_path / "job.yaml", job)


def test_a_clip_without_an_audio_track_stops_before_loading(tmp_path: Path) -> None:
    from toolkit.data.demo_clips import make_demo_clips

    clips = copy_clips(tmp_path / "clips", count=1)
    [made] = make_demo_clips(tmp_path / "made", count=1, with_audio=False)
    made.video_path.replace(clips / "silent.mp4")
    made.caption_path.replace(clips / "silent.txt")
    outcome = run_probe([str(_dataset_job(tmp_path, clips))], cwd=tmp_path)
    assert outcome.returncode == 2, outcome.output[-3000:]
    assert (
        f"config.process[0].datasets[0].missing_audio: 1 of 2 files in {clips} have no audio track: "
        "silent.mp4 (video without an audio track)"
    ) in outcome.stderr
    assert "set missing_audio: silence" in outcome.stderr and "Traceback" not in outcome.stderr
    assert outcome.probe == {"job_started": False, "torch_imported": False}


def test_an_image_only_dataset_without_missing_audio_stops_before_loading(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _gray16_png(images / "gray16.png")
    outcome = run_probe([str(_dataset_job(tmp_path, images))], cwd=tmp_path)
    assert outcome.returncode == 2, outcome.output[-3000:]
    assert f"config.process[0].datasets[0].missing_audio: {images} holds only images (1)" in outcome.stderr
    assert outcome.probe == {"job_started": False, "torch_imported": False}


def test_a_folder_of_dangling_links_stops_before_loading(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "a.mp4").symlink_to(tmp_path / "moved.mp4")
    outcome = run_probe([str(_dataset_job(tmp_path, links))], cwd=tmp_path)
    assert outcome.returncode == 2, outcome.output[-3000:]
    assert f"config.process[0].datasets[0].folder_path: folder {links} holds no media that can be read (a.mp4: a link to" in outcome.stderr
    assert outcome.probe == {"job_started": False, "torch_imported": False}


def test_the_dry_run_prints_what_the_media_will_go_through(tmp_path: Path, monkeypatch, capsys) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(clips / "short.mp4", 5)
    _clip(clips / "surround.mp4", 9, channels=6)
    (clips / "gone.mp4").symlink_to(tmp_path / "moved.mp4")
    job = _dataset_job(tmp_path, clips, resolution=[4096], shrink_video_to_frames=False)
    monkeypatch.setattr(Job, "dry_run", lambda self: ["(the memory plan)"])  # the plan's own tests cover it
    assert run.main([str(job), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    where = f"{job}:   config.process[0].datasets[0]"
    assert f"{job}: found in the dataset folders (checked before loading):" in printed
    assert f"{where}.resolution: {clips / 'short.mp4'}: 64x64 is scaled up 64x to its 4096x4096 bucket" in printed
    assert f"{where}.num_frames: {clips / 'short.mp4'}: has 5 frames at 24 fps, fewer than num_frames=9" in printed
    assert f"{where}.audio: {clips / 'surround.mp4'}: 6-channel audio (5.1) is downmixed to stereo" in printed
    assert f"{where}.folder_path: {clips / 'gone.mp4'}: a link to {tmp_path / 'moved.mp4'}, which does not exist: skipped" in printed
    assert printed.index("found in the dataset folders") < printed.index("(the memory plan)")


# --- one run trains on every recoverable fault ---------------------------------------------------------


def test_a_run_over_every_recoverable_media_fault_trains_what_a_viewer_would_see(tmp_path: Path, tiny_ready, capsys) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    gray, short, still = _gray16_png(clips / "gray16.png"), _clip(clips / "short.mp4", 5), _clip(clips / "still.mp4", 1)
    short.with_suffix(".txt").write_bytes("\ufeffa red square moving left to right".encode())  # a Windows editor's BOM
    surround = _clip(clips / "surround.mp4", 9, channels=6)
    (clips / "gone.mp4").symlink_to(tmp_path / "moved.mp4")
    job = training_job(tmp_path, clips, train={"steps": 1, "lr": 1e-3, "dtype": "fp32", "disable_sampling": True})
    job["config"]["process"][0]["datasets"][0].update(missing_audio="silence", shrink_video_to_frames=False)
    job["config"]["process"][0]["model"].update(verbose=True, trace_every=1)
    outcome = run_here([str(write_yaml(tmp_path / "job.yaml", job))], capsys)

    assert outcome.returncode == 0, outcome.output[-3000:]
    assert "4 clips trained on, 1 skipped" in outcome.output and f"skipped {clips / 'gone.mp4'}: " in outcome.output
    assert f"{short}: has 5 frames at 24 fps, fewer than num_frames=9" in outcome.output
    assert f"{still}: a video of 1 frame: trained as a still" in outcome.output
    assert f"{surround}: 6-channel audio (5.1) is downmixed to stereo" in outcome.output
    records = [json.loads(line) for line in (tmp_path / "out" / "fault" / "trace.jsonl").read_text().splitlines()]
    begun = {r["span_id"]: Path(r["fields"]["clip"]).name for r in records if r["type"] == "span_begin" and r["name"] == "load_media"}
    loads = {begun[r["span_id"]]: r["fields"] for r in records if r["type"] == "span_end" and r["name"] == "load_media"}
    gray_video = loads[gray.name]["video"]
    assert gray_video["shape"] == [3, 1, 64, 64] and gray_video["min"] == pytest.approx(128 / 127.5 - 1, abs=1e-3)
    assert gray_video["max"] == pytest.approx(128 / 127.5 - 1, abs=1e-3)  # not 1.0: not white
    assert loads[short.name]["video"]["shape"] == [3, 9, 64, 64]
    assert loads[short.name]["source_frames"] == spread_frame_indices(9, 5)
    assert loads[still.name]["video"]["shape"] == [3, 1, 64, 64]
    assert loads[surround.name]["audio"]["shape"][0] == 2 and loads[surround.name]["audio_source_channels"] == 6
    prompts = [p for r in records if r["type"] == "span_begin" and r["name"] == "get_prompt_embeds" for p in r["fields"]["prompts"]]
    assert "a red square moving left to right" in prompts
    assert not any("\ufeff" in prompt for prompt in prompts)
