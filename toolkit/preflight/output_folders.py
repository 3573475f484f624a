"""The folder a process writes to must be one it can create and write, with names its file system takes,
known before loading."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.atomic_write import TEMPORARY_NAME_EXTRA_BYTES

_DEFAULT_NAME_MAX = 255  # ext4, xfs, btrfs, tmpfs, NTFS, APFS: a file name is at most 255 bytes


def output_folder_problems(folder: str, key: str) -> list[str]:
    """A problem when `folder` (or the nearest part of it that exists) is a file or not writable."""
    path = Path(folder).expanduser()
    existing = nearest_existing(path)
    if not existing.is_dir():
        return [
            f"{key}: {path} cannot be created: {existing} is a file, not a folder; "
            "choose another folder or move that file"
        ]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}: {path} cannot be written: {existing} is not writable by this user; choose another folder"]
    return []


def run_name_problems(folder: str, name: str, longest_file_name: str, key: str = "config.name") -> list[str]:
    """A problem when the run's name is too long for the file system of `folder`, measured in bytes.

    `name` becomes the folder `<folder>/<name>`, and it is part of the longest file name written
    there, `longest_file_name` (written under an atomic_write temporary name first, which is longer
    still). Both must fit the file system's limit (`os.pathconf(..., "PC_NAME_MAX")`, 255 bytes on
    the usual ones), or the run would stop at its first save.
    """
    path = Path(folder).expanduser()
    limit = name_max(nearest_existing(path))
    name_bytes = len(os.fsencode(name))
    extra = len(os.fsencode(longest_file_name)) - name_bytes + TEMPORARY_NAME_EXTRA_BYTES
    allowed = limit - max(extra, 0)
    if name_bytes <= allowed:
        return []
    characters = f" ({len(name)} characters)" if len(name) != name_bytes else ""
    shown = f"{name[:20]!r}..." if len(name) > 20 else repr(name)
    example = longest_file_name.replace(name, "<name>", 1)
    return [
        f"{key}: {shown} is {name_bytes} bytes in UTF-8{characters}, too long for the file system of {path}: it "
        f"takes file names of at most {limit} bytes, and the run's folder and files are named after it (the longest, "
        f"{example!r}, is {extra} bytes more while it is written); shorten config.name to at most {allowed} bytes"
    ]


def nearest_existing(path: Path) -> Path:
    """`path` itself, or the nearest folder above it that exists."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system holding `folder` accepts."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):  # no pathconf (Windows) or no answer for this file system
        return _DEFAULT_NAME_MAX
