"""ClipEncoder on a stand-in dataset and model: which items share a VAE call, and that each gets its own result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from extensions_built_in.sd_trainer import clip_encoding
from extensions_built_in.sd_trainer.clip_encoding import ClipEncoder
from toolkit.data import LatentCache, PlannedItem
from toolkit.data.dataset import MediaItem


class Dataset:
    """Items whose frames are filled with their index (so a result shows whose it is); `audio_samples[i]` sets
    item i's track length; `shapes[i]` its planned (frames, height, width)."""

    def __init__(self, folder: Path, shapes: list[tuple[int, int, int]], audio_samples: list[int]) -> None:
        self.paths = []
        for index in range(len(shapes)):
            path = folder / f"clip_{index}.mp4"
            path.write_bytes(bytes([index]) * 64)  # the cache keys on the file's identity
            self.paths.append(path)
        self.shapes, self.audio_samples = shapes, audio_samples
        self.decoded: list[int] = []

    @property
    def variant_count(self) -> int:
        return len(self.shapes)

    def planned(self, index: int) -> PlannedItem:
        frames, height, width = self.shapes[index]
        return PlannedItem(self.paths[index], (height, width), frames, 24.0, 16000, True)

    def __getitem__(self, index: int) -> MediaItem:
        self.decoded.append(index)
        frames, height, width = self.shapes[index]
        return MediaItem(
            path=self.paths[index], caption="", video=torch.full((3, frames, height, width), float(index)),
            audio=torch.full((2, self.audio_samples[index]), float(index)), sample_rate=16000, fps=24.0,
            audio_is_silence=False, bucket=(height, width), audio_rms_dbfs=-10.0 - index,
        )

    def check_recorded_audio(self, planned, level) -> None:
        pass


class Model:
    """Latents = the mean of each item's input, so a result names its item; records each call's batch size."""

    def __init__(self) -> None:
        self.video_calls: list[int] = []
        self.audio_calls: list[int] = []

    def encode_images(self, video: torch.Tensor, clip: str):
        self.video_calls.append(video.shape[0])
        return SimpleNamespace(latents=video.mean(dim=(1, 2, 3, 4)).view(-1, 1, 1, 1, 1))

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool]):
        assert len(is_silence) == waveform.shape[0]
        self.audio_calls.append(waveform.shape[0])
        return SimpleNamespace(latents=waveform.mean(dim=(1, 2)).view(-1, 1, 1, 1))

    def encoder_identity(self) -> str:
        return "stand-in"


def _check_results(encoder: ClipEncoder, count: int) -> None:
    for index in range(count):
        encoded = encoder.encoded(index)
        assert encoded["video_latents"].shape == (1, 1, 1, 1, 1) and encoded["video_latents"].item() == index
        assert encoded["audio_latents"].item() == index
        assert encoded["audio_rms_dbfs"].item() == -10.0 - index


def test_items_of_one_shape_share_a_call_and_others_wait_for_their_own(tmp_path):
    small, other = (9, 8, 8), (17, 8, 8)
    dataset = Dataset(tmp_path, [small, small, other, small, other], [4800] * 5)
    model = Model()
    encoder = ClipEncoder(model, dataset, None, silence_for=None)
    _check_results(encoder, 5)
    assert model.video_calls == [3, 2] and model.audio_calls == [3, 2]  # items 0, 1, 3 then 2, 4
    assert dataset.decoded == [0, 1, 3, 2, 4]  # each decoded once


def test_a_track_of_another_length_is_encoded_alone_and_the_frames_still_together(tmp_path):
    dataset = Dataset(tmp_path, [(9, 8, 8)] * 3, [4800, 4801, 4800])
    model = Model()
    _check_results(ClipEncoder(model, dataset, None, silence_for=None), 3)
    assert model.video_calls == [3] and model.audio_calls == [1, 1, 1]


def test_the_value_limit_and_cached_items_bound_a_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_encoding, "BATCH_VALUES", 2 * 3 * 9 * 8 * 8)  # two of these clips a call
    (tmp_path / "clips").mkdir()
    dataset = Dataset(tmp_path / "clips", [(9, 8, 8)] * 5, [4800] * 5)
    model = Model()
    cache = LatentCache(tmp_path / "cache")
    first = ClipEncoder(model, dataset, cache, silence_for=None)
    _check_results(first, 5)
    assert model.video_calls == [2, 2, 1]

    (entry,) = [path for path in cache.folder.iterdir() if path.name.startswith("clip_1_")]
    entry.unlink()  # item 1 must be encoded again, alone: its neighbours come from the cache
    model.video_calls.clear()
    dataset.decoded.clear()
    _check_results(ClipEncoder(model, dataset, cache, silence_for=None), 5)
    assert model.video_calls == [1] and dataset.decoded == [1]


def test_a_dataset_without_audio_gets_the_silence_latents_per_item(tmp_path):
    dataset = Dataset(tmp_path, [(9, 8, 8)] * 2, [4800] * 2)
    items = [replace(dataset[index], audio=None) for index in range(2)]
    model = Model()
    silences = []
    encoder = ClipEncoder(model, dataset, None, silence_for=lambda frames, fps: silences.append((frames, fps)) or torch.zeros(1, 1, 1, 1))
    results = encoder._encode(items)
    assert silences == [(9, 24.0), (9, 24.0)] and model.audio_calls == [] and model.video_calls == [2]
    assert [result["video_latents"].item() for result in results] == [0.0, 1.0]


def test_unused_items_are_never_decoded_or_batched(tmp_path):
    dataset = Dataset(tmp_path, [(9, 8, 8)] * 4, [4800] * 4)
    model = Model()
    encoder = ClipEncoder(model, dataset, None, silence_for=None, unused={1, 3})
    for index in (0, 2):
        assert encoder.encoded(index)["video_latents"].item() == index
    assert dataset.decoded == [0, 2] and model.video_calls == [2] and model.audio_calls == [2]
