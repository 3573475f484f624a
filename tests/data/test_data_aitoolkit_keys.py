"""ai-toolkit's dataset keys: num_repeats, flip_x/flip_y, shrink_video_to_frames, auto_frame_count, shuffle_tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toolkit.data.captions import shuffle_caption
from toolkit.data.dataset import MediaDataset
from toolkit.data.demo_clips import make_demo_clips
from toolkit.data.media import read_video, spread_frame_indices


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 33-frame 64x64 clip at 24 fps (a red square moving left to right) with a 16 kHz tone."""
    folder = tmp_path_factory.mktemp("long")
    make_demo_clips(folder, count=1, num_frames=33)
    return folder


def _red_centroid_x(frame: torch.Tensor) -> float:
    """Mean column of the red square in a (3, H, W) frame in [-1, 1]."""
    red = (frame[0] > 0.2) & (frame[1] < -0.2) & (frame[2] < -0.2)
    return red.nonzero()[:, 1].float().mean().item()


def test_num_repeats_3_triples_the_items_per_epoch(demo_folder: Path) -> None:
    once = MediaDataset(demo_folder, num_frames=9, resolutions=[64])
    thrice = MediaDataset(demo_folder, num_frames=9, resolutions=[64], num_repeats=3)
    assert len(once) == 4 and len(thrice) == 12 and thrice.variant_count == 4
    assert len(thrice.batch_keys()) == 12
    assert [thrice[i].path for i in range(12)] == [once[i % 4].path for i in range(12)]
    assert torch.equal(thrice[9].video, once[1].video)


def test_flip_x_adds_a_mirrored_copy_of_every_clip(demo_folder: Path) -> None:
    plain = MediaDataset(demo_folder, num_frames=9, resolutions=[64])
    flipped = MediaDataset(demo_folder, num_frames=9, resolutions=[64], flip_x=True)
    assert len(flipped) == 8
    original, mirror = flipped[0], flipped[4]
    assert original.path == mirror.path and (original.flip_x, mirror.flip_x) == (False, True)
    assert torch.equal(original.video, plain[0].video)
    assert torch.equal(mirror.video, torch.flip(plain[0].video, dims=[-1]))
    # demo_00's red square moves left to right; mirrored, it moves right to left.
    assert _red_centroid_x(original.video[:, 0]) < _red_centroid_x(original.video[:, -1])
    assert _red_centroid_x(mirror.video[:, 0]) > _red_centroid_x(mirror.video[:, -1])
    assert torch.equal(mirror.audio, original.audio)


def test_flip_x_and_flip_y_give_four_versions_of_each_clip(demo_folder: Path) -> None:
    plain = MediaDataset(demo_folder, num_frames=9, resolutions=[64])
    both = MediaDataset(demo_folder, num_frames=9, resolutions=[64], flip_x=True, flip_y=True, num_repeats=2)
    assert len(both) == 32 and both.variant_count == 16
    versions = [both[index] for index in (1, 5, 9, 13)]
    assert [(item.flip_x, item.flip_y) for item in versions] == [(False, False), (True, False), (False, True), (True, True)]
    video = plain[1].video
    expected = [video, video.flip(-1), video.flip(-2), video.flip(-1).flip(-2)]
    assert all(torch.equal(item.video, want) for item, want in zip(versions, expected))


def test_shrink_video_to_frames_spreads_the_frames_over_the_whole_clip(long_clip: Path) -> None:
    path = long_clip / "demo_00.mp4"
    every_frame = read_video(path, num_frames=33)
    spread = read_video(path, num_frames=9, spread=True)
    assert spread_frame_indices(9, 33) == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    assert spread.source_indices == (0, 4, 8, 12, 16, 20, 24, 28, 32)
    assert torch.equal(spread.frames, every_frame.frames[0::4])
    # Without fps the 9 frames keep real time: 32 source frame steps at 24 fps over 8 steps.
    assert spread.fps == pytest.approx(6.0) and spread.duration_s == pytest.approx(1.5)
    assert spread.audio.waveform.shape[-1] == round(1.5 * spread.audio.sample_rate)
    # With fps set they are labelled at that rate, as ai-toolkit does, and the audio is squeezed to match.
    labelled = read_video(path, num_frames=9, fps=24, spread=True)
    assert torch.equal(labelled.frames, spread.frames) and labelled.fps == 24.0
    assert labelled.audio.waveform.shape[-1] == round(9 / 24 * labelled.audio.sample_rate)


def test_dataset_spread_frames_reach_the_end_of_the_clip(long_clip: Path) -> None:
    first = MediaDataset(long_clip, num_frames=9, resolutions=[64])[0]
    spread = MediaDataset(long_clip, num_frames=9, resolutions=[64], shrink_video_to_frames=True)
    item = spread[0]
    assert item.frame_selection == "spread" and first.frame_selection == "start"
    assert item.video.shape == first.video.shape == (3, 9, 64, 64)
    assert torch.equal(item.video[:, 0], first.video[:, 0])
    assert _red_centroid_x(item.video[:, -1]) > _red_centroid_x(first.video[:, -1]) + 10
    assert item.fps == pytest.approx(6.0) and spread.batch_keys() == [(9, 64, 64, pytest.approx(6.0))]
    assert item.audio.shape == (2, round(1.5 * 16000))


def test_shrink_video_to_frames_accepts_clips_shorter_than_num_frames(demo_folder: Path) -> None:
    # 17-frame clips, 33 frames asked: without spreading that is an error; spread, frames repeat.
    dataset = MediaDataset(demo_folder, num_frames=33, resolutions=[64], shrink_video_to_frames=True)
    assert dataset[0].video.shape == (3, 33, 64, 64)


def test_auto_frame_count_takes_the_longest_8k_plus_1_the_clip_holds(long_clip: Path, demo_folder: Path) -> None:
    own_rate = MediaDataset(long_clip, num_frames=9, resolutions=[64], auto_frame_count=True)
    assert own_rate.batch_keys() == [(33, 64, 64, 24.0)] and own_rate[0].video.shape[1] == 33
    half_rate = MediaDataset(long_clip, num_frames=9, resolutions=[64], fps=12, auto_frame_count=True)
    assert half_rate.batch_keys() == [(17, 64, 64, 12.0)]
    seventeen = MediaDataset(demo_folder, num_frames=33, resolutions=[64], auto_frame_count=True)
    assert {key[0] for key in seventeen.batch_keys()} == {17}


def test_shuffle_tokens_reorders_caption_parts_seeded(tmp_path: Path, demo_folder: Path) -> None:
    caption = "sks dog, red collar, on grass, sunny day, close up"
    shuffled = {shuffle_caption(caption, f"0:0:{index}") for index in range(12)}
    assert len(shuffled) > 3
    assert all(sorted(text.split(", ")) == sorted(caption.split(", ")) for text in shuffled)
    assert shuffle_caption("no commas here", "1") == "no commas here"

    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "demo_00.mp4").write_bytes((demo_folder / "demo_00.mp4").read_bytes())
    (folder / "demo_00.txt").write_text(caption)
    dataset = MediaDataset(folder, num_frames=9, resolutions=[64], shuffle_tokens=True, num_repeats=6, seed=3)
    captions = [dataset.caption_at(index) for index in range(6)]
    assert len(set(captions)) > 1 and captions == [dataset.caption_at(index) for index in range(6)]
    again = MediaDataset(folder, num_frames=9, resolutions=[64], shuffle_tokens=True, num_repeats=6, seed=3)
    assert [again.caption_at(index) for index in range(6)] == captions
    plain = MediaDataset(folder, num_frames=9, resolutions=[64], num_repeats=6)
    assert {plain.caption_at(index) for index in range(6)} == {caption}
