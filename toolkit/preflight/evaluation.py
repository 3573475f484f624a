"""Held-out clips before loading: a `validation_split` must leave something to train on."""

from __future__ import annotations

from toolkit.data.held_out import held_out_count, training_file_count


def validation_split_problems(datasets, validation_split: float | None, key: str) -> list[str]:
    """A problem when `validation_split` would hold out every file of the training datasets."""
    if validation_split is None:
        return []
    files = training_file_count(datasets)
    held_out = held_out_count(validation_split, files)
    if files and held_out >= files:
        return [
            f"{key}: {validation_split} of the {files} training file(s) holds out {held_out} (at least one, "
            "rounded to the nearest clip), which leaves nothing to train on; lower validation_split, add clips, "
            "or hold out a separate folder with is_val: true"
        ]
    return []
