"""The dataset page: the clips of a folder with their captions, what a run would make of each, caption edits.

"What a run would make of each" is the dataset's own scan (`toolkit.data.dataset_scan.FolderScan.check`)
with the dataset settings shown on the page: a clip is used (with its bucket, frames and fps),
skipped (`on_corrupt: skip`, with the reason), or stops the run (no caption, no audio track,
broken with `on_corrupt: error`), as it would be once the model has loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from toolkit.atomic_write import atomic_write
from toolkit.config import DatasetConfig
from toolkit.data.files import caption_path, is_image, is_media, list_media_files
from toolkit.errors import DataError, ToolkitError
from toolkit.extensions import arch_rules, default_arch

from .folders import Folders, NotFound, PathRefused, inside, is_plain_name

CAPTION_EXT = re.compile(r"^[A-Za-z0-9_]{1,16}$")
MAX_CAPTION_BYTES = 64 * 1024
SETTINGS = ("caption_ext", "default_caption", "num_frames", "resolution", "shrink_video_to_frames", "missing_audio", "on_corrupt", "audio")


class CaptionRefused(ToolkitError):
    """A caption edit the UI will not write (answered 400 with the reason)."""


@dataclass(frozen=True)
class Clip:
    name: str
    media: str  # path relative to the dataset folder, for /datasets/<index>/files/...
    is_image: bool
    caption: str
    caption_file: str
    verdict: str  # used, skipped, stops the run
    detail: str


@dataclass
class DatasetView:
    index: int
    relative: str
    folder: Path
    subfolders: list[str]
    clips: list[Clip]
    settings: dict[str, str]
    settings_problems: list[str]

    def as_json(self) -> dict:
        return {
            "index": self.index,
            "path": self.relative,
            "folder": str(self.folder),
            "subfolders": self.subfolders,
            "settings": self.settings,
            "settings_problems": self.settings_problems,
            "clips": [clip.__dict__ for clip in self.clips],
        }


def dataset_settings(query: dict[str, str]) -> dict[str, str]:
    """The dataset settings of the page, as text: the query's, else DatasetConfig's defaults."""
    defaults = DatasetConfig.model_fields
    settings = {}
    for name in SETTINGS:
        default = defaults[name].get_default(call_default_factory=True)
        text = ", ".join(map(str, default)) if isinstance(default, list) else ("on" if default is True else ("" if default in (None, False) else str(default)))
        settings[name] = query.get(name, text)
    return settings


def browse(folders: Folders, index: int, relative: str, settings: dict[str, str]) -> DatasetView:
    base = folders.dataset_folder(index)
    folder = inside(base, relative) if relative else base
    if not folder.is_dir():
        raise NotFound(f"{relative!r} is not a folder")
    subfolders = sorted(path.name for path in folder.iterdir() if path.is_dir() and is_plain_name(path.name))
    view = DatasetView(index, folder.relative_to(base.resolve()).as_posix() if folder != base else "", folder, subfolders, [], settings, [])
    try:
        config = _config(folder, settings)
    except ValidationError as error:
        view.settings_problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)]
        config = None
    view.clips = [_clip(path, base.resolve(), config) for path in list_media_files(folder)]
    return view


def _config(folder: Path, settings: dict[str, str]) -> DatasetConfig:
    return DatasetConfig(
        folder_path=str(folder),
        caption_ext=settings["caption_ext"],
        default_caption=settings["default_caption"],
        num_frames=settings["num_frames"],
        resolution=[part.strip() for part in settings["resolution"].split(",") if part.strip()],
        shrink_video_to_frames=settings["shrink_video_to_frames"] == "on",
        missing_audio=settings["missing_audio"],
        on_corrupt=settings["on_corrupt"],
        audio=settings["audio"] == "on",
    )


def _clip(path: Path, base: Path, config: DatasetConfig | None) -> Clip:
    ext = config.caption_ext if config else "txt"
    caption_file = caption_path(path, ext)
    caption = caption_file.read_text(encoding="utf-8", errors="replace").strip() if caption_file.is_file() else ""
    verdict, detail = ("unknown", "fix the settings above") if config is None else _verdict(path, config)
    return Clip(path.name, path.relative_to(base).as_posix(), is_image(path), caption, caption_file.name, verdict, detail)


def _verdict(path: Path, config: DatasetConfig) -> tuple[str, str]:
    from toolkit.data.dataset_scan import FolderScan  # decodes headers with PyAV: imported when a page asks

    # A dataset page belongs to no job, so no model.arch: the clips are judged by the default arch's rules.
    scan = FolderScan(
        path.parent, config.caption_ext, config.default_caption, config.num_frames, config.fps, config.resolution,
        config.on_corrupt, config.missing_audio, config.audio, config.shrink_video_to_frames, config.auto_frame_count,
        arch_rules(default_arch()),
    )
    try:
        entry = scan.check(path)
    except DataError as error:
        return "stops the run", str(error)
    if entry is None:
        return "skipped", scan.skipped[-1][1]
    width, height = entry.bucket[1], entry.bucket[0]
    audio = "with audio" if entry.has_audio else "no audio track"
    notices = "".join(f"; {notice.text} ({notice.key})" for notice in scan.notices)  # what the trainer does to it
    return "used", f"{width}x{height}, {entry.num_frames} frames at {entry.fps:g} fps, {audio}{notices}"


def save_caption(folders: Folders, index: int, relative: str, clip: str, caption_ext: str, text: str) -> Path:
    """Write a clip's caption file atomically; the clip must be a media file in a served dataset folder."""
    base = folders.dataset_folder(index)
    folder = inside(base, relative) if relative else base
    if not is_plain_name(clip):
        raise PathRefused(f"{clip!r} is not a file name")
    media = inside(folder, clip)
    if not media.is_file() or not is_media(media):
        raise CaptionRefused(f"{clip} is not a clip or image of this dataset")
    if not CAPTION_EXT.match(caption_ext.lstrip(".")):
        raise CaptionRefused(f"caption_ext {caption_ext!r}: letters, digits and _ only (e.g. txt)")
    data = text.strip().encode("utf-8")
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionRefused(f"caption of {len(data)} bytes; at most {MAX_CAPTION_BYTES}")
    target = caption_path(media, caption_ext)
    with atomic_write(target) as temporary:
        temporary.write_bytes(data + b"\n")
    return target
