"""Batches of one shape: a sampler that groups items by bucket, and the collate
function that stacks them.

    dataset = MediaDataset(...)
    sampler = BucketBatchSampler(dataset.batch_keys(), batch_size=2, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_media_items)
    for epoch in range(epochs):
        sampler.set_epoch(epoch); dataset.set_epoch(epoch)
        for batch in loader: ...
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Sampler

from toolkit.data.dataset import MediaItem
from toolkit.errors import DataError


@dataclass
class MediaBatch:
    """Items of one bucket stacked: video (B, C, T, H, W), audio (B, channels, samples) or None."""

    video: torch.Tensor
    audio: torch.Tensor | None
    captions: list[str]
    paths: list[Path]
    sample_rate: int | None
    fps: float
    audio_is_silence: list[bool]
    bucket: tuple[int, int]

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MediaBatch:
        """The same batch with its tensors on `device` (and cast to `dtype` when given)."""
        video = self.video.to(device=device, dtype=dtype)
        audio = self.audio.to(device=device, dtype=dtype) if self.audio is not None else None
        return replace(self, video=video, audio=audio)


def collate_media_items(items: Sequence[MediaItem]) -> MediaBatch:
    """Stack items that share a bucket, frame count and fps (see `BucketBatchSampler`)."""
    if not items:
        raise DataError("cannot collate an empty batch")
    keys = {item.batch_key for item in items}
    if len(keys) > 1:
        listing = ", ".join(f"{item.path.name} {item.batch_key}" for item in items)
        raise DataError(
            f"batch mixes shapes (frames, height, width, fps): {listing}; "
            f"batch with BucketBatchSampler so each batch holds one bucket"
        )
    has_audio = {item.audio is not None for item in items}
    if len(has_audio) > 1:
        raise DataError(f"batch mixes items with and without audio: {[str(item.path) for item in items]}")
    first = items[0]
    return MediaBatch(
        video=torch.stack([item.video for item in items]),
        audio=torch.stack([item.audio for item in items]) if first.audio is not None else None,
        captions=[item.caption for item in items],
        paths=[item.path for item in items],
        sample_rate=first.sample_rate,
        fps=first.fps,
        audio_is_silence=[item.audio_is_silence for item in items],
        bucket=first.bucket,
    )


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose `batch_keys` are equal.

    With `shuffle`, items are shuffled within each bucket and the batches are
    shuffled across buckets, seeded by `seed` and the epoch (`set_epoch`).
    `drop_last` drops each bucket's incomplete last batch.
    """

    def __init__(
        self,
        batch_keys: Sequence[Hashable],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.buckets: dict[Hashable, list[int]] = {}
        for index, key in enumerate(batch_keys):
            self.buckets.setdefault(key, []).append(index)
        if drop_last and all(len(indices) < batch_size for indices in self.buckets.values()):
            sizes = {str(key): len(indices) for key, indices in self.buckets.items()}
            raise DataError(
                f"drop_last with batch_size {batch_size} leaves no batches (items per bucket: {sizes}); "
                f"lower batch_size or add clips"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        batches = []
        for indices in self.buckets.values():
            order = list(indices)
            if self.shuffle:
                rng.shuffle(order)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        count = math.floor if self.drop_last else math.ceil
        return sum(count(len(indices) / self.batch_size) for indices in self.buckets.values())
