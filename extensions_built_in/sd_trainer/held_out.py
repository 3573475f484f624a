"""Taking the held-out clips out of the encoded data, after encoding, so they share the training clips' caches.

A clip is held out when its dataset has `is_val: true`, or when `train.validation_split`
chose its file (toolkit/data/held_out.py: the choice the pre-load checks counted). A
held-out file is held out whole: none of its flipped copies or repeats is trained; it is
evaluated once, as it is (no flip), with its caption. Its flipped copies are not even
encoded (training_data.held_out_copies).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from toolkit.errors import DataError

from .training_data import EncodedData, TrainingExample


def split_held_out(data: EncodedData, dataset_configs, chosen: Collection[Path]) -> EncodedData:
    """`data` with only the training examples in `examples` and the held-out clips in `held_out`; `chosen`: the
    files `train.validation_split` holds out (toolkit.data.held_out.split_off_files)."""
    if not chosen and not any(dataset.is_val for dataset in dataset_configs):
        return data

    def is_held_out(example: TrainingExample) -> bool:
        return example.is_val or Path(example.path).resolve() in chosen

    training = [example for example in data.examples if not is_held_out(example)]
    held_out: dict[Path, TrainingExample] = {}
    for example in data.examples:
        if is_held_out(example) and not (example.flip_x or example.flip_y):
            held_out.setdefault(Path(example.path).resolve(), example)  # one example: its caption as written
    if not training:
        raise DataError(
            f"every clip that could be used is held out for evaluation ({len(held_out)} clips); nothing is left to "
            "train on. Lower train.validation_split or add training clips"
            + (f" ({len(data.skipped)} clips were skipped as unreadable)" if data.skipped else "")
        )
    if not held_out:
        raise DataError(
            "no held-out clip could be used for evaluation, they were all skipped as unreadable: "
            + "; ".join(f"{path}: {reason}" for path, reason in data.skipped[:3])
        )
    return replace(data, examples=training, held_out=list(held_out.values()))
