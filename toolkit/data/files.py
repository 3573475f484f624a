"""Which files of a dataset folder are media, and each one's caption. Plain Python, no torch.

The dataset reads its folder with these functions, and so does the check that
runs before any model loads (`toolkit.preflight`), so both agree on what a
clip is and what its caption is, and a mistake is reported the same way by
both, only earlier by the second.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS


class MissingCaptionError(DataError):
    """A clip has no caption: no (or an empty) caption file and no `default_caption`."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS


def list_media_files(folder: Path) -> list[Path]:
    """The clips and images directly in `folder` that can be read, sorted; hidden files are left out.

    The others with a media extension (dangling links, files this user may not read) are
    `unreadable_media_files`: the dataset skips them and says so.
    """
    return sorted(path for path in _media_names(folder) if path.is_file() and os.access(path, os.R_OK))


def unreadable_media_files(folder: Path) -> list[tuple[Path, str]]:
    """(path, reason) for each media name in `folder` that cannot be read: a link whose target is gone,
    or a file without read permission for this user."""
    unreadable = []
    for path in sorted(_media_names(folder)):
        if path.is_symlink() and not path.exists():
            unreadable.append((path, f"a link to {os.readlink(path)}, which does not exist"))
        elif path.is_file() and not os.access(path, os.R_OK):
            unreadable.append((path, "not readable by this user (permission denied)"))
    return unreadable


def _media_names(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if is_media(path) and not path.name.startswith(".")]


def caption_path(media_path: Path, caption_ext: str) -> Path:
    """`<stem>.<caption_ext>` beside the media file (`caption_ext` with or without its dot)."""
    return media_path.with_suffix(f".{caption_ext.lstrip('.')}")


def read_caption(media_path: Path, caption_ext: str, default_caption: str = "") -> str:
    """The caption of `media_path`: its caption file's text, else `default_caption`, else a DataError
    that names the file, the `caption_ext` looked for and `default_caption`."""
    path = caption_path(media_path, caption_ext)
    caption = ""
    if path.is_file():
        try:
            # utf-8-sig drops a byte-order mark (Windows editors write one), which would reach the text encoder.
            caption = path.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: caption is not UTF-8 text ({error}); re-save it as UTF-8") from error
    if caption:
        return caption
    if default_caption:
        return default_caption
    state = "is empty" if path.is_file() else "does not exist"
    raise MissingCaptionError(
        f"{media_path}: no caption: {path.name} {state} (caption_ext: {caption_ext!r}, no default_caption); "
        "add the caption file, set caption_ext to the extension your captions have, or set default_caption "
        "in the dataset config"
    )
