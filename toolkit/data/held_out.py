"""Which clips are held out of training to be evaluated: every clip of an `is_val` dataset, and with
`train.validation_split` a share of the training datasets' files.

The share is chosen from the files each training dataset lists (the same listing
the dataset and the pre-load checks use): the files whose names hash lowest. The
choice needs no weights and no decoding, so the pre-load checks count it; it is the
same on every run, resume and process, whatever `train.seed`, the order of the
datasets or where the folders are (a file added to a folder can take a place,
though). A held-out file is held out whole: its flipped copies and repeats are not
trained either.

Plain Python (no torch): the pre-load checks import it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.data.files import list_media_files

if TYPE_CHECKING:
    from toolkit.config import DatasetConfig

_SALT = "validation_split"  # seeds the ranking; a constant, so runs with another train.seed hold out the same clips


def held_out_count(fraction: float, files: int) -> int:
    """Files `validation_split: fraction` holds out of `files`: the nearest whole number, at least one."""
    if files == 0:
        return 0
    return min(files, max(1, round(fraction * files)))


def training_datasets(datasets: Sequence[DatasetConfig]) -> list[DatasetConfig]:
    """The datasets a validation split takes from: neither held out (is_val) nor regularisation (is_reg)."""
    return [dataset for dataset in datasets if not dataset.is_val and not dataset.is_reg]


def split_off_files(datasets: Sequence[DatasetConfig], fraction: float | None) -> set[Path]:
    """The files (resolved paths) that `validation_split: fraction` holds out of the training datasets."""
    if fraction is None:
        return set()
    pooled = [path.resolve() for dataset in training_datasets(datasets) for path in _files_of(dataset)]
    ranked = sorted(pooled, key=lambda path: (zlib.crc32(f"{_SALT}:{path.name}".encode()), str(path)))
    return set(ranked[: held_out_count(fraction, len(pooled))])


def training_file_count(datasets: Sequence[DatasetConfig]) -> int:
    """How many files the training datasets list (before any is held out)."""
    return sum(len(_files_of(dataset)) for dataset in training_datasets(datasets))


def _files_of(dataset: DatasetConfig) -> list[Path]:
    folder = Path(dataset.folder_path).expanduser()
    return list_media_files(folder) if folder.is_dir() else []
