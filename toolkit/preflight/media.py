"""Each dataset's media, read from their headers before loading: what would stop the run, and what training will do.

A file without an audio track while audio is trained (and `missing_audio` is not
`silence`) is a problem: the run would stop on it after the model loaded. What the
dataset will do to a file by rule (toolkit/data/clip_rules.py: a short clip spread,
a 1-frame video trained as a still, 5.1 audio downmixed, frames scaled up more than
2x) and the files it will skip (dangling links, no read permission) are notices,
printed with the config notes, dry run or not.

Only headers are read (PyAV's container metadata, PIL's image header): no frame is
decoded and torch is not imported. A file whose headers cannot be read is left to the
dataset, whose `on_corrupt` decides. Reads are remembered per file and modification
time, so the problems pass and the notices pass read each file once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.config import DatasetConfig
from toolkit.data.clip_rules import ClipSettings, MediaNotice, needs_missing_audio, plan_clip
from toolkit.data.files import list_media_files, unreadable_media_files
from toolkit.errors import DataError
from toolkit.models.arch_rules import ArchRules

if TYPE_CHECKING:
    from toolkit.data.probe import MediaInfo

_SHOWN = 3  # files named per kind of notice and dataset; the rest are counted


@dataclass
class MediaFindings:
    """What the headers of one dataset's files say: problems and notices, each line starting with its key path."""

    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def media_findings(dataset: DatasetConfig, folder: Path, where: str, rules: ArchRules) -> MediaFindings:
    """Problems and notices of the dataset in `folder` (configured by `dataset`, at key path `where`), for a
    model that takes what `rules` say."""
    findings = MediaFindings()
    skipped = [MediaNotice(path, "folder_path", f"{reason}: skipped") for path, reason in unreadable_media_files(folder)]
    findings.notices += _grouped(skipped, where)
    settings = ClipSettings(
        dataset.num_frames, dataset.fps, dataset.resolution, dataset.shrink_video_to_frames,
        dataset.auto_frame_count, loads_audio=dataset.audio, rules=rules,
    )
    media = list_media_files(folder)
    infos = [info for info in map(_header, media) if info is not None]
    notices = [notice for info in infos for notice in _plan_notices(info, settings)]
    findings.notices += _grouped(notices, where)
    silent = [info for info in infos if needs_missing_audio(info, dataset.audio, dataset.missing_audio)]
    if silent:
        findings.problems.append(f"{where}.missing_audio: {_no_audio(silent, len(media), folder)}")
    return findings


def _plan_notices(info: MediaInfo, settings: ClipSettings) -> tuple[MediaNotice, ...]:
    try:
        return plan_clip(info, settings, info.frame_count).notices
    except DataError:  # headers without a usable size or rate: the dataset reports the file when it decodes it
        return ()


def _header(path: Path) -> MediaInfo | None:
    stat = path.stat()
    return _read_header(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _read_header(path: str, size: int, mtime_ns: int) -> MediaInfo | None:
    """The file's headers, or None when they cannot be read (the dataset reports that file when it opens it)."""
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    # PyAV is imported once there are files to read, so a config mistake found earlier costs no import.
    from toolkit.data.probe import read_media_info

    try:
        return read_media_info(path)
    except DataError:
        return None


def _grouped(notices: list[MediaNotice], where: str) -> list[str]:
    """One line per notice, at most `_SHOWN` per key; the rest counted on one line."""
    lines: list[str] = []
    for key in dict.fromkeys(notice.key for notice in notices):
        same = [notice for notice in notices if notice.key == key]
        lines += [f"{where}.{key}: {notice}" for notice in same[:_SHOWN]]
        if len(same) > _SHOWN:
            lines.append(f"{where}.{key}: and {len(same) - _SHOWN} more files ({_names(same[_SHOWN:])})")
    return lines


def _no_audio(silent: list[MediaInfo], total: int, folder: Path) -> str:
    images = sum(info.is_image for info in silent)
    if images == total:
        what = f"{folder} holds only images ({total}), and images have no audio track"
    else:
        described = [f"{info.path.name} ({'image' if info.is_image else 'video without an audio track'})" for info in silent]
        more = f" and {len(silent) - _SHOWN} more" if len(silent) > _SHOWN else ""
        what = f"{len(silent)} of {total} files in {folder} have no audio track: {', '.join(described[:_SHOWN])}{more}"
    return (
        f"{what}, while audio is trained (audio: true) and missing_audio is 'error'; set missing_audio: silence "
        "to train them with silence, or audio: false to train the video only, or remove them"
    )


def _names(notices: list[MediaNotice]) -> str:
    names = [notice.path.name for notice in notices]
    shown = ", ".join(names[:_SHOWN])
    return shown + (", ..." if len(names) > _SHOWN else "")

