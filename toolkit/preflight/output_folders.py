"""The folder a process writes to must be one it can create and write, known before loading."""

from __future__ import annotations

import os
from pathlib import Path


def output_folder_problems(folder: str, key: str) -> list[str]:
    """A problem when `folder` (or the nearest part of it that exists) is a file or not writable."""
    path = Path(folder).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [
            f"{key}: {path} cannot be created: {existing} is a file, not a folder; "
            "choose another folder or move that file"
        ]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}: {path} cannot be written: {existing} is not writable by this user; choose another folder"]
    return []
