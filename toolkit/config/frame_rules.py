"""Frame counts, sizes and sampling steps moved to what LTX-2 can do, and said so, instead of refused.

LTX-2's video VAE compresses time 8x after the first frame and space 32x, so a clip has 8k+1
frames and sides that are multiples of 32. ai-toolkit takes any count (its UI offers 40 frames
for some models); a job that asks for one is moved to the nearest valid value (ties go up) and the
change is listed once: `config.process[0].sample.num_frames 40 -> 41`. LTX-2's scheduler stretches
its noise levels to a terminal value, which divides by zero with a single step (NaN frames that
then fail to encode), so `sample_steps: 1` becomes 2. Values that are not positive whole numbers
are left for the schema to reject.
"""

from __future__ import annotations

from typing import Any

from toolkit.config.notes import ConfigNotes

_FRAMES_WHY = "LTX-2 needs 8k+1 frames"
_SIZE_WHY = "LTX-2 needs multiples of 32"
_STEPS_WHY = "LTX-2's scheduler needs at least 2 steps"


def nearest_frame_count(frames: int) -> int:
    """The 8k+1 count nearest `frames` (>= 1), the larger one on a tie."""
    below = (frames - 1) // 8 * 8 + 1
    above = below + 8
    return below if frames - below < above - frames else above


def nearest_multiple_of_32(size: int) -> int:
    """The multiple of 32 nearest `size` (>= 1), the larger one on a tie, never below 32."""
    below = size // 32 * 32
    above = below + 32
    return below if below > 0 and size - below < above - size else above


def adjust_frames_and_sizes(process: dict[str, Any], where: str, notes: ConfigNotes) -> None:
    """Move every frame count and size of one process mapping to LTX-2's grid, noting each change."""
    datasets = process.get("datasets")
    for index, dataset in enumerate(datasets if isinstance(datasets, list) else []):
        if not isinstance(dataset, dict):
            continue
        path = f"{where}.datasets[{index}]"
        _adjust(dataset, "num_frames", path, nearest_frame_count, _FRAMES_WHY, notes)
        _adjust_resolution(dataset, path, notes)
    for block in ("sample", "generate"):
        settings = process.get(block)
        if isinstance(settings, dict):
            _adjust(settings, "num_frames", f"{where}.{block}", nearest_frame_count, _FRAMES_WHY, notes)
            for side in ("width", "height"):
                _adjust(settings, side, f"{where}.{block}", nearest_multiple_of_32, _SIZE_WHY, notes)
            _adjust(settings, "sample_steps", f"{where}.{block}", lambda steps: max(steps, 2), _STEPS_WHY, notes)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _adjust(mapping: dict[str, Any], key: str, path: str, rule, why: str, notes: ConfigNotes) -> None:
    value = mapping.get(key)
    if _is_count(value) and rule(value) != value:
        mapping[key] = rule(value)
        notes.adjusted.append(f"{path}.{key} {value} -> {mapping[key]} ({why})")


def _adjust_resolution(dataset: dict[str, Any], path: str, notes: ConfigNotes) -> None:
    """ai-toolkit also takes one number for `resolution`; ours is a list of bucket sizes."""
    resolution = dataset.get("resolution")
    if _is_count(resolution):
        dataset["resolution"] = [resolution]
        notes.adjusted.append(f"{path}.resolution {resolution} -> [{resolution}] (a list of bucket sizes)")
    if not isinstance(dataset.get("resolution"), list):
        return
    sizes = dataset["resolution"]
    adjusted = [nearest_multiple_of_32(size) if _is_count(size) else size for size in sizes]
    adjusted = [size for index, size in enumerate(adjusted) if size not in adjusted[:index]]
    if adjusted != sizes:
        dataset["resolution"] = adjusted
        notes.adjusted.append(f"{path}.resolution {sizes} -> {adjusted} ({_SIZE_WHY})")
