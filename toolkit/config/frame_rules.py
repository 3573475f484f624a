"""Frame counts, sizes and sampling steps moved to what the process's model takes, and said so, instead of refused.

A video model's VAE compresses time and space by fixed factors, so it takes only some frame counts
and sizes (the arch's rules, toolkit/models/arch_rules.py: e.g. LTX-2 takes 8k+1 frames and sides
that are multiples of 32). ai-toolkit takes any count (its UI offers 40 frames for some models); a
job that asks for one is moved to the nearest valid value (ties go up) and the change is listed
once: `config.process[0].sample.num_frames 40 -> 41 (LTX-2 needs 8k+1 frames)`. Sampling steps
below the arch's floor are raised to it. Values that are not positive whole numbers are left for
the schema to reject.
"""

from __future__ import annotations

from typing import Any

from toolkit.config.arch_rules import arch_of, rules_for
from toolkit.config.notes import ConfigNotes


def adjust_frames_and_sizes(process: dict[str, Any], where: str, notes: ConfigNotes) -> None:
    """Move every frame count and size of one process mapping to its arch's grid, noting each change."""
    rules = rules_for(arch_of(process))
    datasets = process.get("datasets")
    for index, dataset in enumerate(datasets if isinstance(datasets, list) else []):
        if not isinstance(dataset, dict):
            continue
        path = f"{where}.datasets[{index}]"
        _adjust(dataset, "num_frames", path, rules.nearest_frame_count, rules.frames_why, notes)
        _adjust_resolution(dataset, path, rules.nearest_size, rules.size_why, notes)
    for block in ("sample", "generate"):
        settings = process.get(block)
        if isinstance(settings, dict):
            path = f"{where}.{block}"
            _adjust(settings, "num_frames", path, rules.nearest_frame_count, rules.frames_why, notes)
            for side in ("width", "height"):
                _adjust(settings, side, path, rules.nearest_size, rules.size_why, notes)
            floor = rules.min_sample_steps
            _adjust(settings, "sample_steps", path, lambda steps: max(steps, floor), rules.sample_steps_why, notes)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _adjust(mapping: dict[str, Any], key: str, path: str, rule, why: str, notes: ConfigNotes) -> None:
    value = mapping.get(key)
    if _is_count(value) and rule(value) != value:
        mapping[key] = rule(value)
        notes.adjusted.append(f"{path}.{key} {value} -> {mapping[key]} ({why})")


def _adjust_resolution(dataset: dict[str, Any], path: str, nearest_size, why: str, notes: ConfigNotes) -> None:
    """ai-toolkit also takes one number for `resolution`; ours is a list of bucket sizes."""
    resolution = dataset.get("resolution")
    if _is_count(resolution):
        dataset["resolution"] = [resolution]
        notes.adjusted.append(f"{path}.resolution {resolution} -> [{resolution}] (a list of bucket sizes)")
    if not isinstance(dataset.get("resolution"), list):
        return
    sizes = dataset["resolution"]
    adjusted = [nearest_size(size) if _is_count(size) else size for size in sizes]
    adjusted = [size for index, size in enumerate(adjusted) if size not in adjusted[:index]]
    if adjusted != sizes:
        dataset["resolution"] = adjusted
        notes.adjusted.append(f"{path}.resolution {sizes} -> {adjusted} ({why})")
