"""Dataset folders before loading: something to train on, a caption for each clip, and what the media hold.

Uses the dataset's own listing and caption reading (toolkit/data/files.py), so
what passes here is what the dataset will find; the media's headers are read by
toolkit/preflight/media.py. Decoding each file is left to the dataset (its
`on_corrupt` setting decides what a broken file does).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from toolkit.config import DatasetConfig
from toolkit.data.files import (
    MEDIA_EXTENSIONS,
    MissingCaptionError,
    caption_path,
    list_media_files,
    read_caption,
    unreadable_media_files,
)
from toolkit.errors import DataError
from toolkit.models.arch_rules import ArchRules
from toolkit.preflight.media import media_findings

_SHOWN = 3  # files named in one message; the rest are counted


def dataset_problems(datasets: list[DatasetConfig], where: str, rules: ArchRules) -> list[str]:
    """What would stop the run in the dataset folders, for a model that takes what `rules` say (its arch's)."""
    problems: list[str] = []
    for index, dataset in enumerate(datasets):
        problems += _one_dataset(dataset, f"{where}[{index}]", rules)
    return problems


def dataset_notices(datasets: list[DatasetConfig], where: str, rules: ArchRules) -> list[str]:
    """What training will do to files by rule, and the files it will skip (toolkit/preflight/media.py)."""
    notices: list[str] = []
    for index, dataset in enumerate(datasets):
        folder = Path(dataset.folder_path).expanduser()
        if folder.is_dir():
            notices += media_findings(dataset, folder, f"{where}[{index}]", rules).notices
    return notices


def _one_dataset(dataset: DatasetConfig, where: str, rules: ArchRules) -> list[str]:
    folder = Path(dataset.folder_path).expanduser()
    if not folder.is_dir():  # the schema checked it; it may have gone since
        return [f"{where}.folder_path: {folder} is not a folder"]
    media = list_media_files(folder)
    if not media:
        return [f"{where}.folder_path: {_no_media(folder)}"]
    missing: list[Path] = []
    unreadable: list[str] = []
    for path in media:
        try:
            read_caption(path, dataset.caption_ext, dataset.default_caption)
        except MissingCaptionError:
            missing.append(path)
        except DataError as error:  # a caption file that cannot be read
            unreadable.append(str(error))
    problems = [f"{where}.caption_ext: {message}" for message in unreadable]
    if missing:
        problems.append(f"{where}.caption_ext: {_missing_captions(folder, media, missing, dataset.caption_ext)}")
    return problems + media_findings(dataset, folder, where, rules).problems


def _no_media(folder: Path) -> str:
    unreadable = unreadable_media_files(folder)
    if unreadable:
        shown = "; ".join(f"{path.name}: {reason}" for path, reason in unreadable[:_SHOWN])
        more = f"; and {len(unreadable) - _SHOWN} more" if len(unreadable) > _SHOWN else ""
        return f"folder {folder} holds no media that can be read ({shown}{more}); fix the links or permissions"
    others = sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))
    allowed = "/".join(MEDIA_EXTENSIONS)
    if not others:
        return f"folder {folder} is empty; put the clips ({allowed}) and their caption files in it"
    shown = ", ".join(others[:_SHOWN]) + (f" and {len(others) - _SHOWN} more" if len(others) > _SHOWN else "")
    return f"folder {folder} holds no clips or images ({shown}); training media must be {allowed}"


def _missing_captions(folder: Path, media: list[Path], missing: list[Path], caption_ext: str) -> str:
    expected = ", ".join(f"{path.name} needs {caption_path(path, caption_ext).name}" for path in missing[:_SHOWN])
    more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
    found = _other_caption_extensions(folder, missing)
    hint = f"; captions with another extension are there: {found}" if found else ""
    return (
        f"{len(missing)} of {len(media)} files in {folder} have no caption with caption_ext {caption_ext!r} "
        f"(missing or empty: {expected}{more}) and default_caption is not set{hint}. Add the caption files, "
        "set caption_ext to the extension your captions have, or set default_caption"
    )


def _other_caption_extensions(folder: Path, missing: list[Path]) -> str:
    """Extensions of non-media files that share a stem with a clip lacking its caption, e.g. `.caption`."""
    stems = {path.stem for path in missing}
    counts = Counter(
        path.suffix
        for path in folder.iterdir()
        if path.is_file() and path.stem in stems and path.suffix.lower() not in MEDIA_EXTENSIONS and path.suffix
    )
    return ", ".join(f"{suffix} ({count})" for suffix, count in counts.most_common())
