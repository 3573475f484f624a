"""The dataset's scan: what each file of the folder is, learned once from captions and headers.

Probing every file before any model loads makes configuration mistakes (no caption and no
default, clips too short, missing audio) surface early, and fixes each item's bucket, frame
count and fps, so batches are known without decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.data.buckets import pick_bucket
from toolkit.data.files import list_media_files, read_caption
from toolkit.data.media import STILL_IMAGE_FPS, MediaInfo, count_frames, probe_media, real_time_fps, source_frame_indices
from toolkit.errors import DataError
from toolkit.trace import get_tracer


@dataclass(frozen=True)
class MediaEntry:
    """What the scan learned about one usable file."""

    path: Path
    caption: str
    bucket: tuple[int, int]
    num_frames: int
    fps: float
    has_audio: bool

    @property
    def batch_key(self) -> tuple[int, int, int, float]:
        return (self.num_frames, *self.bucket, self.fps)


@dataclass
class FolderScan:
    """Scans `folder` with MediaDataset's settings (see its docstring); `skipped` lists (path, reason)."""

    folder: Path
    caption_ext: str
    default_caption: str
    num_frames: int
    fps: float | None
    resolutions: list[int]
    on_corrupt: str
    missing_audio: str
    wants_audio: bool  # a clip without an audio track is then an error (or silence, per missing_audio)
    shrink_video_to_frames: bool
    auto_frame_count: bool
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def entries(self) -> list[MediaEntry]:
        """One entry per usable file; broken ones raise (on_corrupt: error) or go to `skipped`."""
        media_files = list_media_files(self.folder)
        entries = [entry for entry in map(self.check, media_files) if entry is not None]
        if not entries:
            found = f"{len(media_files)} media files, {len(self.skipped)} skipped" if media_files else "no media files"
            raise DataError(
                f"dataset folder {self.folder} has no usable clips or images ({found}); "
                f"add .mp4/.mov/.webm/.mkv/.png/.jpg/.jpeg/.webp files or fix folder_path"
            )
        return entries

    def check(self, path: Path) -> MediaEntry | None:
        """One file as the dataset takes it: its entry; None when it is skipped (on_corrupt: skip; the reason
        goes to `skipped`); DataError when it stops the run (no caption, no audio track, or broken with
        on_corrupt: error). The UI's dataset page asks this per clip."""
        caption = self._read_caption(path)
        try:
            info = probe_media(path)
            self._check_length(info)
        except DataError as error:
            if self.on_corrupt == "error":
                raise
            self.skipped.append((path, str(error)))
            get_tracer().event("dataset_skip", clip=str(path), reason=str(error))
            return None
        # A missing audio track is a settings question, not a broken file: it raises even with on_corrupt: skip.
        self._check_audio(info)
        return self._entry(info, caption)

    def _entry(self, info: MediaInfo, caption: str) -> MediaEntry:
        num_frames = self._frames_of(info)
        fps = self.fps if self.fps is not None else (info.fps or STILL_IMAGE_FPS)
        if self.shrink_video_to_frames and self.fps is None and not info.is_image:
            fps = real_time_fps(num_frames, self._frame_count(info), info.fps)
        bucket = pick_bucket(info.height, info.width, self.resolutions)
        return MediaEntry(info.path, caption, bucket, num_frames, float(fps), info.has_audio)

    def _frames_of(self, info: MediaInfo) -> int:
        """Frames the clip trains on: `num_frames`, or with `auto_frame_count` all the clip holds (8k+1)."""
        if info.is_image:
            return 1
        if not self.auto_frame_count:
            return self.num_frames
        clip_fps = self.fps if self.fps is not None else info.fps
        # Output frame i shows source frame floor(i * source_fps / clip_fps): count those inside the clip.
        fitting = int(np.floor((self._frame_count(info) - 1) * clip_fps / info.fps + 1e-6)) + 1
        return (fitting - 1) // 8 * 8 + 1

    @staticmethod
    def _frame_count(info: MediaInfo) -> int:
        return info.frame_count if info.frame_count is not None else count_frames(info.path)

    def _check_audio(self, info: MediaInfo) -> None:
        if not self.wants_audio or info.has_audio or self.missing_audio == "silence":
            return
        kind = "image" if info.is_image else "clip"
        raise DataError(
            f"{info.path}: {kind} has no audio track; set missing_audio: silence in the dataset config to train "
            f"it with silence, or remove it"
        )

    def _check_length(self, info: MediaInfo) -> None:
        # Spread frames come from anywhere in the clip (a short clip repeats frames); auto counts always fit.
        if info.is_image or info.frame_count is None or info.fps is None:
            return
        if self.shrink_video_to_frames or self.auto_frame_count:
            return
        clip_fps = self.fps if self.fps is not None else info.fps
        needed = source_frame_indices(self.num_frames, info.fps, clip_fps)[-1] + 1
        if info.frame_count < needed:
            raise DataError(
                f"{info.path}: clip too short: it has {info.frame_count} frames at {info.fps:g} fps, but "
                f"num_frames={self.num_frames} at {clip_fps:g} fps needs {needed}; lower num_frames (or fps) "
                f"in the dataset config, set shrink_video_to_frames: true, or remove the clip"
            )

    def _read_caption(self, media_path: Path) -> str:
        return read_caption(media_path, self.caption_ext, self.default_caption)
