"""The training dataset: a folder of clips and images with caption files.

The folder is scanned once when the dataset is built (dataset_scan.py): captions
are read, each file's headers are probed (size, frame rate, length, audio), and
its bucket is fixed, so configuration mistakes (no caption and no default, missing
audio) surface before any model is loaded, and every item's
shape is known without decoding. Decoding happens per item in `__getitem__`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from toolkit.data.audio import SILENCE_THRESHOLD_DBFS, fit_length, is_silent, match_channels, rms_dbfs
from toolkit.data.buckets import check_resolutions, resize_and_crop
from toolkit.data.captions import shuffle_caption
from toolkit.data.media import AudioTrack, read_video
from toolkit.data.clip_rules import MediaNotice
from toolkit.data.dataset_scan import FolderScan, MediaEntry
from toolkit.data.files import is_image
from toolkit.errors import DataError
from toolkit.extensions import arch_rules, default_arch
from toolkit.logging import get_logger
from toolkit.models.arch_rules import ArchRules
from toolkit.trace import NullTracer, get_tracer

OnCorrupt = Literal["skip", "error"]
MissingAudio = Literal["error", "silence"]

_UNTRACED = NullTracer()
_logger = get_logger(__name__)


@dataclass
class MediaItem:
    """One training example, ready for the VAEs.

    `audio_is_silence` is True when the file had no audio track, or a silent one
    (RMS below SILENCE_THRESHOLD_DBFS), and `missing_audio: silence` trains it as
    silence, so traces and losses can tell. `audio_rms_dbfs` is the track's level.
    `audio` is None only when the dataset loads no audio (`audio_sample_rate=None`).
    `flip_x`/`flip_y` say whether the frames were mirrored; `frame_selection` is
    "spread" when the frames span the whole clip, "start" when they are its first ones.
    """

    path: Path
    caption: str
    video: torch.Tensor  # float32 (C, T, H, W) in [-1, 1]
    audio: torch.Tensor | None  # float32 (channels, samples) at sample_rate
    sample_rate: int | None
    fps: float
    audio_is_silence: bool
    bucket: tuple[int, int]  # (height, width)
    audio_rms_dbfs: float | None = None  # None when no audio is loaded
    flip_x: bool = False
    flip_y: bool = False
    frame_selection: str = "start"

    @property
    def batch_key(self) -> tuple[int, int, int, float]:
        return (self.video.shape[1], *self.bucket, self.fps)


@dataclass(frozen=True)
class PlannedItem:
    """An item as the scan planned it, known without decoding: what a latent cache entry is keyed on.

    `fps` is the planned rate; the decoded clip's (`MediaItem.fps`) is the one that trains, and it can differ
    where a header misstates the frame count of a spread clip.
    """

    path: Path
    bucket: tuple[int, int]  # (height, width)
    num_frames: int
    fps: float
    sample_rate: int | None  # None when the dataset loads no audio
    has_audio_track: bool
    flip_x: bool = False
    flip_y: bool = False
    frame_selection: str = "start"

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(channels, frames, height, width) of the item's `video`, as decoding gives it."""
        return (3, self.num_frames, *self.bucket)

    @property
    def flips(self) -> str:
        """"flip_x", "flip_y", "flip_x+flip_y" or "": which mirrored copy of the file this is."""
        return "+".join(name for name, on in (("flip_x", self.flip_x), ("flip_y", self.flip_y)) if on)


@dataclass(frozen=True)
class _Variant:
    """One file as trained: the file's entry and the flips applied to its frames."""

    entry: int
    flip_x: bool = False
    flip_y: bool = False


class MediaDataset(Dataset[MediaItem]):
    """Videos (.mp4/.mov/.webm/.mkv) and images (.png/.jpg/.jpeg/.webp) in `folder`, each
    with an optional caption file `<stem>.<caption_ext>`.

    - Videos give `num_frames` frames from their start, at `fps` (None keeps each
      clip's own rate); images give one frame. With `shrink_video_to_frames` the
      frames are spread evenly over the whole clip instead (see `read_video`).
      With `auto_frame_count` each clip gives as many frames as it holds at that
      rate, rounded down to a count the model takes, instead of `num_frames`. A clip with fewer frames
      than asked is spread over its whole length, frames repeated, and a 1-frame
      video trains as a still (clip_rules.py); each gets a notice (`notices`).
    - Frames are scaled and center-cropped to the bucket picked from `resolutions`.
    - `rules`: the model's frame counts, sizes and still-image rate (its arch's, toolkit/models/arch_rules.py;
      None: the default arch's).
    - `flip_x` adds a left-right mirrored copy of every item, then `flip_y` an
      upside-down copy of every item so far (both: 4 items a file), as ai-toolkit
      does; `num_repeats` repeats the whole list (`len` counts every repeat).
    - Audio is decoded at `audio_sample_rate` (libswresample resamples while decoding; more
      than two channels are downmixed to stereo in the same pass, with a notice), given
      `audio_channels` channels and cut or padded to the clip's duration;
      `audio_sample_rate=None` loads no audio.
      A file without audio raises (`missing_audio="error"`) or gets silence; a track
      whose RMS is below SILENCE_THRESHOLD_DBFS (-60 dBFS) is the same case: a warning
      names the clip, then it raises or is trained as silence.
    - Files that cannot be decoded raise (`on_corrupt="error"`) or are left out and
      listed in `skipped` as (path, reason); dangling links and files this user may
      not read are always left out, listed and warned about.
    - `shuffle_tokens` shuffles a caption's comma-separated parts; with probability
      `caption_dropout_rate` a caption is replaced by "". Both are seeded by `seed`,
      the epoch from `set_epoch` and the item index, so each repeat gets its own draw.
    """

    def __init__(
        self,
        folder: str | Path,
        caption_ext: str = "txt",
        num_frames: int = 17,
        resolutions: Sequence[int] = (512,),
        fps: float | None = None,
        caption_dropout_rate: float = 0.0,
        default_caption: str = "",
        on_corrupt: OnCorrupt = "error",
        missing_audio: MissingAudio = "error",
        audio_sample_rate: int | None = 16000,
        seed: int = 0,
        audio_channels: int = 2,
        num_repeats: int = 1,
        flip_x: bool = False,
        flip_y: bool = False,
        shrink_video_to_frames: bool = False,
        auto_frame_count: bool = False,
        shuffle_tokens: bool = False,
        rules: ArchRules | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.caption_ext = caption_ext.lstrip(".")
        self.num_frames = num_frames
        self.rules = rules or arch_rules(default_arch())
        self.resolutions = check_resolutions(resolutions, self.rules)
        self.fps = fps
        self.caption_dropout_rate = caption_dropout_rate
        self.default_caption = default_caption
        self.on_corrupt = on_corrupt
        self.missing_audio = missing_audio
        self.audio_sample_rate = audio_sample_rate
        self.audio_channels = audio_channels
        self.seed = seed
        self.num_repeats = num_repeats
        self.flip_x = flip_x
        self.flip_y = flip_y
        self.shrink_video_to_frames = shrink_video_to_frames
        self.auto_frame_count = auto_frame_count
        self.shuffle_tokens = shuffle_tokens
        self.epoch = 0
        self._loads = 0
        self._warned_silent: set[Path] = set()
        self._check_settings()
        scan = FolderScan(
            self.folder, self.caption_ext, default_caption, num_frames, fps, self.resolutions, on_corrupt,
            missing_audio, audio_sample_rate is not None, shrink_video_to_frames, auto_frame_count, self.rules,
        )
        self._entries = scan.entries()
        self.skipped: list[tuple[Path, str]] = scan.skipped
        self.notices: list[MediaNotice] = scan.notices
        self._variants = self._flipped_variants()
        get_tracer().event(
            "dataset_scan",
            lambda: {"buckets": {str(key): count for key, count in Counter(self.batch_keys()).items()}},
            folder=str(self.folder),
            files=len(self._entries),
            items=len(self),
            flips=[name for name, on in (("x", flip_x), ("y", flip_y)) if on],
            num_repeats=num_repeats,
            frame_selection="spread" if shrink_video_to_frames else "start",
            skipped=len(self.skipped),
            notices=len(self.notices),
        )

    def __len__(self) -> int:
        return len(self._variants) * self.num_repeats

    @property
    def variant_count(self) -> int:
        """Distinct items (files times flips): item `i` shows the same frames as item `i % variant_count`."""
        return len(self._variants)

    def __getitem__(self, index: int) -> MediaItem:
        variant, entry = self._variant_entry(index)
        with self._load_span(entry) as span:
            # A still gets the rate its plan gave it (the dataset's fps, else the model's default).
            fps = entry.fps if is_image(entry.path) else self.fps
            clip = read_video(entry.path, entry.num_frames, fps, spread=entry.spread, audio_sample_rate=self.audio_sample_rate)
            frames = clip.frames.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # (T, C, H, W)
            video = _flipped(resize_and_crop(frames, entry.bucket), variant).permute(1, 0, 2, 3).contiguous()
            audio, audio_is_silence = self._audio_for(clip.audio, clip.duration_s, entry.path)
            level = rms_dbfs(audio) if audio is not None else None
            if level is not None and is_silent(level) and not audio_is_silence:
                audio_is_silence = self._silent_track(entry.path, level)
            caption = self.caption_at(index)
            span.set(
                video=video,
                audio=audio,
                audio_rms_dbfs=level,
                audio_is_silence=audio_is_silence,
                caption_dropped=caption == "" and entry.caption != "",
                flip_x=variant.flip_x,
                flip_y=variant.flip_y,
                source_frames=list(clip.source_indices),
                audio_source_channels=clip.audio.source_channels if clip.audio is not None else 0,
            )
        return MediaItem(
            path=entry.path,
            caption=caption,
            video=video,
            audio=audio,
            sample_rate=self.audio_sample_rate,
            fps=clip.fps,
            audio_is_silence=audio_is_silence,
            bucket=entry.bucket,
            audio_rms_dbfs=level,
            flip_x=variant.flip_x,
            flip_y=variant.flip_y,
            frame_selection="spread" if entry.spread and clip.num_frames > 1 else "start",
        )

    def planned(self, index: int) -> PlannedItem:
        """Item `index` as planned by the scan, without decoding it (see PlannedItem)."""
        variant, entry = self._variant_entry(index)
        return PlannedItem(
            path=entry.path,
            bucket=entry.bucket,
            num_frames=entry.num_frames,
            fps=entry.fps,
            sample_rate=self.audio_sample_rate,
            has_audio_track=entry.has_audio,
            flip_x=variant.flip_x,
            flip_y=variant.flip_y,
            frame_selection="spread" if entry.spread and entry.num_frames > 1 else "start",
        )

    def _variant_entry(self, index: int) -> tuple[_Variant, MediaEntry]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} of a dataset of {len(self)}")
        variant = self._variants[index % len(self._variants)]
        return variant, self._entries[variant.entry]

    def check_recorded_audio(self, planned: PlannedItem, level: float | None) -> None:
        """The silent-track rule of `__getitem__` for an item not decoded this time (its latents came from a cache):
        `level` is the RMS its audio track had when it was decoded. A silent track raises or is warned about, as
        `missing_audio` says now (it may have changed since)."""
        if planned.has_audio_track and level is not None and is_silent(level):
            self._silent_track(planned.path, level)

    def _silent_track(self, path: Path, level: float) -> bool:
        """A silent audio track falls under `missing_audio`: an error, or (warned once) trained as silence."""
        if self.missing_audio == "error":
            raise DataError(
                f"{path}: the audio track is silent (RMS {level:.1f} dBFS, below {SILENCE_THRESHOLD_DBFS:g} dBFS); "
                "set missing_audio: silence in the dataset config to train it as silence, or fix or remove the clip"
            )
        if path not in self._warned_silent:
            self._warned_silent.add(path)
            _logger.warning(
                "%s: the audio track is silent (RMS %.1f dBFS, below %g dBFS); trained as silence (missing_audio: silence)",
                path, level, SILENCE_THRESHOLD_DBFS,
            )
        return True

    def caption_at(self, index: int) -> str:
        """The caption item `index` trains on this epoch (shuffled and dropped out as configured)."""
        variant = self._variants[index % len(self._variants)]
        return self._caption_for(index, self._entries[variant.entry].caption)

    def caption_as_written(self, index: int) -> str:
        """Item `index`'s caption as its caption file has it (never shuffled or dropped): what an evaluation reads."""
        return self._entries[self._variants[index % len(self._variants)].entry].caption

    def _load_span(self, entry: MediaEntry) -> Any:
        """A traced span for the first loads and every N-th after (loading runs every step)."""
        load_number = self._loads
        self._loads += 1
        tracer = get_tracer()
        if tracer.should_trace_step(load_number):
            return tracer.span("load_media", clip=str(entry.path), bucket=entry.bucket, load_number=load_number)
        return _UNTRACED.span("load_media")

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of caption dropouts for this epoch."""
        self.epoch = epoch

    def batch_keys(self) -> list[tuple[int, int, int, float]]:
        """Per item (frames, height, width, fps): items with equal keys can share a batch."""
        keys = [self._entries[variant.entry].batch_key for variant in self._variants]
        return keys * self.num_repeats

    @property
    def paths(self) -> list[Path]:
        """The files the dataset reads, each once (whatever the flips and repeats)."""
        return [entry.path for entry in self._entries]

    def _flipped_variants(self) -> list[_Variant]:
        variants = [_Variant(index) for index in range(len(self._entries))]
        if self.flip_x:
            variants += [_Variant(v.entry, True, v.flip_y) for v in variants]
        if self.flip_y:
            variants += [_Variant(v.entry, v.flip_x, True) for v in variants]
        return variants

    def _check_settings(self) -> None:
        if not self.folder.is_dir():
            raise DataError(f"dataset folder_path {self.folder} is not a folder; check the path in the config")
        if self.num_frames < 1:
            raise DataError(f"dataset num_frames must be at least 1, got {self.num_frames}")
        if self.fps is not None and self.fps <= 0:
            raise DataError(f"dataset fps must be positive (or unset to keep each clip's rate), got {self.fps}")
        if not 0.0 <= self.caption_dropout_rate <= 1.0:
            raise DataError(f"dataset caption_dropout_rate must be in [0, 1], got {self.caption_dropout_rate}")
        if self.on_corrupt not in ("skip", "error"):
            raise DataError(f"dataset on_corrupt must be 'skip' or 'error', got {self.on_corrupt!r}")
        if self.missing_audio not in ("error", "silence"):
            raise DataError(f"dataset missing_audio must be 'error' or 'silence', got {self.missing_audio!r}")
        if self.audio_sample_rate is not None and self.audio_sample_rate <= 0:
            raise DataError(
                f"dataset audio_sample_rate must be positive (or unset for video only), got {self.audio_sample_rate}"
            )
        if self.audio_channels not in (1, 2):
            raise DataError(f"dataset audio_channels must be 1 or 2, got {self.audio_channels}")
        if self.num_repeats < 1:
            raise DataError(f"dataset num_repeats must be at least 1, got {self.num_repeats}")

    def _caption_for(self, index: int, caption: str) -> str:
        if self.shuffle_tokens:
            caption = shuffle_caption(caption, f"{self.seed}:{self.epoch}:{index}:shuffle")
        if self.caption_dropout_rate <= 0.0:
            return caption
        draw = random.Random(f"{self.seed}:{self.epoch}:{index}").random()
        return "" if draw < self.caption_dropout_rate else caption

    def _audio_for(self, audio: AudioTrack | None, duration_s: float, path: Path) -> tuple[torch.Tensor | None, bool]:
        if self.audio_sample_rate is None:
            return None, False
        num_samples = int(round(duration_s * self.audio_sample_rate))
        if audio is None:
            if self.missing_audio == "error":
                raise DataError(
                    f"{path}: no audio track; set missing_audio: silence in the dataset config, or remove it"
                )
            return torch.zeros(self.audio_channels, num_samples), True
        waveform = match_channels(audio.waveform, self.audio_channels, str(path))  # decoded at audio_sample_rate
        return fit_length(waveform, num_samples).contiguous(), False


def _flipped(frames: torch.Tensor, variant: _Variant) -> torch.Tensor:
    """`frames` (..., H, W) mirrored as the variant says."""
    dims = [dim for dim, on in ((-1, variant.flip_x), (-2, variant.flip_y)) if on]
    return torch.flip(frames, dims=dims) if dims else frames
