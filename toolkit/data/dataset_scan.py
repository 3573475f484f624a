"""The dataset's scan: what each file of the folder is, learned once from captions and headers.

Probing every file before any model loads makes configuration mistakes (no caption and no
default, missing audio) surface early, and fixes each item's bucket, frame count and fps, so
batches are known without decoding. Each file is planned by the rules the check before loading
applies too (toolkit/data/clip_rules.py); what those rules do to a file (a short clip spread,
audio downmixed, frames scaled up) is said once per file, and every file left out is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.data.clip_rules import ClipPlan, ClipSettings, MediaNotice, needs_missing_audio, plan_clip
from toolkit.data.files import list_media_files, read_caption, unreadable_media_files
from toolkit.data.media import MediaInfo, count_frames, probe_media
from toolkit.errors import DataError
from toolkit.logging import get_logger
from toolkit.logging.events import publish_event
from toolkit.trace import get_tracer

if TYPE_CHECKING:
    from toolkit.models.arch_rules import ArchRules

_logger = get_logger(__name__)


@dataclass(frozen=True)
class MediaEntry:
    """What the scan learned about one usable file; `spread` says its frames span the whole clip."""

    path: Path
    caption: str
    bucket: tuple[int, int]
    num_frames: int
    fps: float
    has_audio: bool
    spread: bool = False

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
    rules: ArchRules
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notices: list[MediaNotice] = field(default_factory=list)

    def entries(self) -> list[MediaEntry]:
        """One entry per usable file; broken ones raise (on_corrupt: error) or go to `skipped`.

        Files that cannot be read at all (dangling links, no read permission) are skipped
        whatever `on_corrupt` says: they are not media the dataset could judge.
        """
        for path, reason in unreadable_media_files(self.folder):
            self._skip(path, f"{path}: {reason}; fix or remove it")
        media_files = list_media_files(self.folder)
        unreadable = len(self.skipped)
        entries = [entry for entry in map(self.check, media_files) if entry is not None]
        if not entries:
            files = len(media_files) + unreadable
            found = f"{files} media files, {len(self.skipped)} skipped" if files else "no media files"
            raise DataError(
                f"dataset folder {self.folder} has no usable clips or images ({found}); "
                f"add .mp4/.mov/.webm/.mkv/.png/.jpg/.jpeg/.webp files or fix folder_path"
            )
        return entries

    def check(self, path: Path) -> MediaEntry | None:
        """One file as the dataset takes it: its entry; None when it is skipped (on_corrupt: skip; the reason
        goes to `skipped`); DataError when it stops the run (no caption, no audio track, or broken with
        on_corrupt: error). The UI's dataset page asks this per clip."""
        caption = read_caption(path, self.caption_ext, self.default_caption)
        try:
            info = probe_media(path)
            plan = plan_clip(info, self._settings(), self._frame_count(info))
        except DataError as error:
            if self.on_corrupt == "error":
                raise
            self._skip(path, str(error))
            return None
        # A missing audio track is a settings question, not a broken file: it raises even with on_corrupt: skip.
        self._check_audio(info)
        self._announce(plan.notices)
        return self._entry(info, caption, plan)

    def _settings(self) -> ClipSettings:
        return ClipSettings(
            self.num_frames, self.fps, self.resolutions, self.shrink_video_to_frames, self.auto_frame_count,
            loads_audio=self.wants_audio, rules=self.rules,
        )

    @staticmethod
    def _entry(info: MediaInfo, caption: str, plan: ClipPlan) -> MediaEntry:
        return MediaEntry(info.path, caption, plan.bucket, plan.num_frames, plan.fps, info.has_audio, plan.spread)

    @staticmethod
    def _frame_count(info: MediaInfo) -> int | None:
        if info.is_image:
            return 1
        return info.frame_count if info.frame_count is not None else count_frames(info.path)

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, reason))
        publish_event(
            get_tracer(), _logger, "dataset_skip", lambda: f"skipped {reason}",
            lambda: {"clip": str(path), "reason": reason}, warning=True,
        )

    def _announce(self, notices: tuple[MediaNotice, ...]) -> None:
        for notice in notices:
            self.notices.append(notice)
            publish_event(
                get_tracer(), _logger, "media_notice", lambda: f"{notice} (dataset key: {notice.key})",
                lambda: {"clip": str(notice.path), "key": notice.key, "notice": notice.text}, warning=True,
            )

    def _check_audio(self, info: MediaInfo) -> None:
        if not needs_missing_audio(info, self.wants_audio, self.missing_audio):
            return
        kind = "image" if info.is_image else "clip"
        raise DataError(
            f"{info.path}: {kind} has no audio track; set missing_audio: silence in the dataset config to train "
            f"it with silence, or remove it"
        )
