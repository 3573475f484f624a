"""MediaDataset: items, captions, dropout, broken files, missing audio; bucket batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.data.dataset import MediaDataset
from toolkit.errors import DataError


def dominant_frequency(waveform: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(waveform.to(torch.float64)).abs()
    return spectrum.argmax().item() * sample_rate / waveform.shape[-1]


def copy_clips(source: Path, target: Path, names: list[str], captions: bool = True) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(source / name, target / name)
        caption = (source / name).with_suffix(".txt")
        if captions and caption.exists():
            shutil.copy(caption, target / caption.name)
    return target


def write_images(folder: Path, count: int, size: tuple[int, int] = (32, 32)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(np.full((*size, 3), index * 5, dtype=np.uint8)).save(folder / f"image_{index:03d}.png")
        (folder / f"image_{index:03d}.txt").write_text(f"grey level {index * 5}")


def test_items_have_video_audio_caption(demo_folder: Path) -> None:
    dataset = MediaDataset(demo_folder, num_frames=9, resolutions=[64], audio_sample_rate=16000)
    assert len(dataset) == 4
    item = dataset[0]
    assert item.path == demo_folder / "demo_00.mp4"
    assert item.caption == "a red square moving left to right, with a 440 Hz tone"
    assert item.video.shape == (3, 9, 64, 64) and item.video.dtype == torch.float32
    assert -1.0 <= item.video.min().item() < -0.5 and 0.5 < item.video.max().item() <= 1.0
    assert item.audio is not None and item.audio.shape == (2, round(9 / 24 * 16000))
    assert (item.sample_rate, item.fps, item.bucket, item.audio_is_silence) == (16000, 24.0, (64, 64), False)
    assert dominant_frequency(item.audio[0], 16000) == pytest.approx(440, abs=3)
    assert dominant_frequency(dataset[1].audio[1], 16000) == pytest.approx(660, abs=3)


def test_frames_are_resized_to_the_bucket(demo_folder: Path) -> None:
    dataset = MediaDataset(demo_folder, num_frames=9, resolutions=[32], audio_sample_rate=None)
    item = dataset[2]
    assert item.video.shape == (3, 9, 32, 32) and item.bucket == (32, 32)
    assert item.audio is None and item.sample_rate is None


def test_audio_is_resampled_and_fitted_to_the_clip(clip_30fps_44k_stereo: Path, tmp_path: Path) -> None:
    shutil.copy(clip_30fps_44k_stereo, tmp_path / "stereo.mp4")
    (tmp_path / "stereo.txt").write_text("a red square, two tones")
    item = MediaDataset(tmp_path, num_frames=10, resolutions=[64], fps=15, audio_sample_rate=16000)[0]
    assert item.video.shape == (3, 10, 96, 64) and item.fps == 15.0
    assert item.audio is not None and item.audio.shape == (2, round(10 / 15 * 16000))
    assert dominant_frequency(item.audio[0], 16000) == pytest.approx(440, abs=2)
    assert dominant_frequency(item.audio[1], 16000) == pytest.approx(660, abs=2)
    mono = MediaDataset(tmp_path, num_frames=10, resolutions=[64], fps=15, audio_sample_rate=24000, audio_channels=1)[0]
    assert mono.audio is not None and mono.audio.shape == (1, 16000)


def test_missing_caption_uses_default_or_raises(demo_folder: Path, tmp_path: Path) -> None:
    folder = copy_clips(demo_folder, tmp_path / "clips", ["demo_00.mp4", "demo_01.mp4"])
    (folder / "demo_01.txt").unlink()
    dataset = MediaDataset(folder, num_frames=9, resolutions=[64], default_caption="a moving shape")
    assert dataset[0].caption.startswith("a red square") and dataset[1].caption == "a moving shape"
    (folder / "demo_00.txt").write_text("  \n")  # blank caption file counts as missing
    assert MediaDataset(folder, num_frames=9, resolutions=[64], default_caption="x")[0].caption == "x"
    with pytest.raises(DataError) as raised:
        MediaDataset(folder, num_frames=9, resolutions=[64])
    assert str(folder / "demo_00.mp4") in str(raised.value) and "default_caption" in str(raised.value)
    assert "demo_00.txt is empty (caption_ext: 'txt'" in str(raised.value)


def test_caption_extension_is_configurable(demo_folder: Path, tmp_path: Path) -> None:
    folder = copy_clips(demo_folder, tmp_path / "clips", ["demo_03.mp4"], captions=False)
    (folder / "demo_03.caption").write_text("custom extension")
    assert MediaDataset(folder, caption_ext=".caption", num_frames=9, resolutions=[64])[0].caption == "custom extension"


def test_caption_dropout_rate_is_respected_and_seeded(tmp_path: Path) -> None:
    write_images(tmp_path, 40)

    def dropped(seed: int, epochs: range) -> list[bool]:
        dataset = MediaDataset(
            tmp_path, num_frames=1, resolutions=[32], caption_dropout_rate=0.3, audio_sample_rate=None, seed=seed
        )
        drops = []
        for epoch in epochs:
            dataset.set_epoch(epoch)
            drops += [dataset[index].caption == "" for index in range(len(dataset))]
        return drops

    first = dropped(seed=7, epochs=range(8))
    assert 0.24 <= sum(first) / len(first) <= 0.36
    assert dropped(seed=7, epochs=range(8)) == first
    assert dropped(seed=8, epochs=range(8)) != first
    assert first[:40] != first[40:80]  # a new epoch draws anew


def test_corrupt_file_raises_or_is_skipped_and_counted(demo_folder: Path, tmp_path: Path) -> None:
    folder = copy_clips(demo_folder, tmp_path / "clips", ["demo_00.mp4", "demo_01.mp4"])
    broken = folder / "broken.mp4"
    broken.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    (folder / "broken.txt").write_text("noise")
    with pytest.raises(DataError, match=str(broken)):
        MediaDataset(folder, num_frames=9, resolutions=[64], on_corrupt="error")
    dataset = MediaDataset(folder, num_frames=9, resolutions=[64], on_corrupt="skip")
    assert len(dataset) == 2 and dataset.paths == [folder / "demo_00.mp4", folder / "demo_01.mp4"]
    assert len(dataset.skipped) == 1
    path, reason = dataset.skipped[0]
    assert path == broken and "cannot open as a video" in reason


def test_clips_shorter_than_num_frames_are_spread_with_a_notice_each(demo_folder: Path) -> None:
    dataset = MediaDataset(demo_folder, num_frames=33, resolutions=[64])  # 17-frame clips, taken from the start
    assert len(dataset) == 4 and not dataset.skipped
    assert [(notice.path.name, notice.key) for notice in dataset.notices] == [
        (f"demo_0{index}.mp4", "num_frames") for index in range(4)
    ]
    assert "has 17 frames at 24 fps, fewer than num_frames=33" in dataset.notices[0].text
    item = dataset[0]
    assert item.video.shape[1] == 33 and item.frame_selection == "spread"
    assert item.fps == pytest.approx(24 * 32 / 16)  # spread frames keep real time


def test_missing_audio_raises_or_becomes_silence(silent_clip: Path) -> None:
    folder = silent_clip.parent
    for on_corrupt in ("error", "skip"):
        with pytest.raises(DataError) as raised:
            MediaDataset(folder, num_frames=9, resolutions=[64], missing_audio="error", on_corrupt=on_corrupt)
        assert str(silent_clip) in str(raised.value) and "missing_audio: silence" in str(raised.value)
    item = MediaDataset(folder, num_frames=9, resolutions=[64], missing_audio="silence")[0]
    assert item.audio_is_silence is True
    assert item.audio is not None and item.audio.shape == (2, 6000) and item.audio.abs().sum() == 0


def test_batch_keys_name_each_bucket(demo_folder: Path, clip_30fps_44k_stereo: Path, tmp_path: Path) -> None:
    folder = copy_clips(demo_folder, tmp_path / "mixed", ["demo_00.mp4", "demo_01.mp4", "demo_02.mp4"])
    shutil.copy(clip_30fps_44k_stereo, folder / "portrait.mp4")
    (folder / "portrait.txt").write_text("a portrait clip")
    write_images(folder, 2, size=(40, 90))  # upscaled to a 64 short side: 64 x 144 -> 64 x 128
    dataset = MediaDataset(folder, num_frames=9, resolutions=[64], fps=24, missing_audio="silence")
    assert sorted(set(dataset.batch_keys())) == [(1, 64, 128, 24.0), (9, 64, 64, 24.0), (9, 96, 64, 24.0)]
    assert sorted(dataset.batch_keys()).count((9, 64, 64, 24.0)) == 3


def test_bad_settings_name_the_setting(demo_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        MediaDataset(tmp_path / "absent", num_frames=9, resolutions=[64])
    with pytest.raises(DataError, match="on_corrupt"):
        MediaDataset(demo_folder, num_frames=9, resolutions=[64], on_corrupt="ignore")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="caption_dropout_rate"):
        MediaDataset(demo_folder, num_frames=9, resolutions=[64], caption_dropout_rate=1.5)
    with pytest.raises(DataError, match="no media files"):
        MediaDataset(tmp_path, num_frames=9, resolutions=[64])
