"""A dataset's items through the VAEs, with small clips of one shape encoded together.

On a small clip the VAEs spend most of their time on per-call work rather than on the values: the tiny
example's four 9-frame 64 px clips encode about 3x faster as one batch of four than one by one (CPU, one
thread). So the encoder that meets an item it must compute (a cache miss, or every item without a disk
cache) also decodes the next items of the same planned shape that it must compute, up to BATCH_VALUES
pixel values, and encodes them in one call; their results wait for their turn. A clip of a real
training size (hundreds of millions of values) is always encoded alone, as before, so batching never
adds to a large encode's memory.

A clip's latents can differ from its one-by-one encode in the last float bits (another convolution
algorithm for another batch size); a run is still repeatable, since a rerun batches the same clips, and
the disk cache keeps whatever was encoded first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch

from toolkit.data import LatentCache, MediaDataset, PlannedItem
from toolkit.data.dataset import MediaItem

# The most pixel values (frames x channels x height x width, summed over the clips) encoded in one call.
BATCH_VALUES = 1 << 22

# What a latent cache entry holds besides the latents: what decoding the clip found, so that a hit decodes nothing.
CLIP_FACTS = ("clip_fps", "audio_is_silence", "audio_rms_dbfs")

SilenceFor = Callable[[int, float], torch.Tensor]  # (frames, fps) -> the audio latents of silence that long


class ClipEncoder:
    """Item `variant`'s latents and CLIP_FACTS for one dataset, through its latent cache when it has one.

    With the cache on, an entry is found from the file and the dataset's plan alone, so a hit (a resume,
    a rerun) never decodes the clip. `unused`: the items it will never be asked for (a held-out file's
    flipped copies), which no batch takes either.
    """

    def __init__(
        self, model, dataset: MediaDataset, cache: LatentCache | None, silence_for: SilenceFor,
        unused: Collection[int] = (),
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.cache = cache
        self.silence_for = silence_for
        self.unused = unused
        self._ready: dict[int, dict[str, torch.Tensor]] = {}
        self._settings: dict[int, dict] = {}

    def encoded(self, variant: int) -> dict[str, torch.Tensor]:
        if self.cache is None:
            return self._compute(variant)
        planned = self.dataset.planned(variant)
        encoded = self.cache.get_or_compute(
            planned.path, self.settings(variant), lambda: self._compute(variant), variant=planned.flips
        )
        level = float(encoded["audio_rms_dbfs"])
        self.dataset.check_recorded_audio(planned, None if level != level else level)  # NaN: no audio loaded
        return encoded

    def settings(self, variant: int) -> dict:
        """What item `variant`'s cache entry is keyed on."""
        if variant not in self._settings:
            planned = self.dataset.planned(variant)
            self._settings[variant] = {
                "frames": planned.video_shape,
                "bucket": planned.bucket,
                "fps": planned.fps,
                "sample_rate": planned.sample_rate,
                "encoder": self.model.encoder_identity(),
                "frame_selection": planned.frame_selection,
                "flip": [planned.flip_x, planned.flip_y],
                "holds": ["video_latents", "audio_latents", *CLIP_FACTS],
            }
        return self._settings[variant]

    def _compute(self, variant: int) -> dict[str, torch.Tensor]:
        if variant not in self._ready:
            batch = self._batch_from(variant)
            self._ready.update(zip(batch, self._encode([self.dataset[index] for index in batch])))
        return self._ready.pop(variant)

    def _batch_from(self, variant: int) -> list[int]:
        """`variant` and the items after it of its planned shape, rate and audio that need computing (not
        `unused`), within BATCH_VALUES."""
        first = self.dataset.planned(variant)
        values = _values(first)
        batch = [variant]
        for index in range(variant + 1, self.dataset.variant_count):
            if values + _values(first) > BATCH_VALUES:
                break
            if index in self.unused:
                continue
            planned = self.dataset.planned(index)
            if index in self._ready or not _same_encode(first, planned) or self._cached(index, planned):
                continue
            batch.append(index)
            values += _values(planned)
        return batch

    def _cached(self, index: int, planned: PlannedItem) -> bool:
        return self.cache is not None and self.cache.entry_path(planned.path, self.settings(index)).is_file()

    def _encode(self, items: list[MediaItem]) -> list[dict[str, torch.Tensor]]:
        video = self._encode_video(items)
        audio = self._encode_audio(items)
        return [
            {
                "video_latents": video[position],
                "audio_latents": audio[position],
                "clip_fps": torch.tensor(item.fps, dtype=torch.float64),
                "audio_is_silence": torch.tensor(item.audio_is_silence),
                "audio_rms_dbfs": torch.tensor(
                    float("nan") if item.audio_rms_dbfs is None else item.audio_rms_dbfs, dtype=torch.float64
                ),
            }
            for position, item in enumerate(items)
        ]

    def _encode_video(self, items: list[MediaItem]) -> list[torch.Tensor]:
        """Each item's video latents (1, C, F, H, W): in one call when the frames have one shape (as planned)."""
        latents: list[torch.Tensor] = []
        for group in _groups(items, lambda item: tuple(item.video.shape)):
            clip = str(group[0].path) + (f" and {len(group) - 1} more" if len(group) > 1 else "")
            encoded = self.model.encode_images(torch.stack([item.video for item in group]), clip=clip).latents.cpu()
            latents.extend(_split(encoded))
        return latents

    def _encode_audio(self, items: list[MediaItem]) -> list[torch.Tensor]:
        """Each item's audio latents (1, C, L, M): in one call when every track has one shape and rate; the
        latents of silence for a dataset that loads no audio (`audio: false`)."""
        if any(item.audio is None for item in items):
            return [self.silence_for(item.video.shape[1], item.fps) for item in items]
        latents: list[torch.Tensor] = []
        for group in _groups(items, lambda item: (tuple(item.audio.shape), item.sample_rate)):
            waveforms = torch.stack([item.audio for item in group])
            silences = [item.audio_is_silence for item in group]
            latents.extend(_split(self.model.encode_audio(waveforms, group[0].sample_rate, silences).latents.cpu()))
        return latents


def _groups(items: list[MediaItem], key: Callable[[MediaItem], object]) -> list[list[MediaItem]]:
    """`items` as one group (one VAE call) when `key` is the same for all of them, else one group per item."""
    return [items] if len({key(item) for item in items}) == 1 else [[item] for item in items]


def _split(batch: torch.Tensor) -> list[torch.Tensor]:
    """A batch's items, each (1, ...) and with its own memory (a cache entry or an example keeps only its own)."""
    return [batch[position : position + 1].clone() for position in range(batch.shape[0])]


def _values(planned: PlannedItem) -> int:
    channels, frames, height, width = planned.video_shape
    return channels * frames * height * width


def _same_encode(first: PlannedItem, other: PlannedItem) -> bool:
    """Whether two items decode to frames and audio of one shape, so one VAE call can take both."""
    return (first.video_shape, first.fps, first.sample_rate) == (other.video_shape, other.fps, other.sample_rate)
