"""Resolution buckets: every clip is scaled and center-cropped to a size the
model's VAE accepts (both sides multiples of the arch's `size_multiple`, e.g. 32
for LTX-2), keeping its aspect ratio as far as that allows, so clips of one
bucket can share a batch.

Picking a bucket is plain Python: the check before loading (toolkit/preflight) picks
the same buckets without importing torch; only the resizing needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from toolkit.errors import DataError

if TYPE_CHECKING:
    import torch

    from toolkit.models.arch_rules import ArchRules


def check_resolutions(resolutions: Sequence[int], rules: ArchRules) -> list[int]:
    """Validated, sorted short-side sizes; errors say which setting to fix."""
    if not resolutions:
        raise DataError("dataset resolution is empty; give at least one short-side size, e.g. resolution: [512]")
    multiple = rules.size_multiple
    bad = [size for size in resolutions if not isinstance(size, int) or size <= 0 or size % multiple]
    if bad:
        raise DataError(
            f"dataset resolution {list(resolutions)}: {bad} not positive multiples of {multiple}; "
            f"the {rules.model_name} VAE needs sizes like {rules.example_sizes()}"
        )
    return sorted(set(resolutions))


def pick_bucket(height: int, width: int, resolutions: Sequence[int], rules: ArchRules) -> tuple[int, int]:
    """Target (height, width) for a clip of `height` x `width`.

    The short side is scaled to the largest configured size not above it (the
    smallest configured size when all are above it, so small clips are upscaled),
    the long side follows the aspect ratio, and both are rounded down to
    multiples of the arch's `size_multiple` (the crop removes the remainder).
    """
    sizes = check_resolutions(resolutions, rules)
    if height <= 0 or width <= 0:
        raise DataError(f"cannot bucket a clip of size {height}x{width}")
    short_side = min(height, width)
    fitting = [size for size in sizes if size <= short_side]
    target_short = fitting[-1] if fitting else sizes[0]
    scale = target_short / short_side
    return _on_grid(height * scale, rules), _on_grid(width * scale, rules)


def resize_and_crop(frames: torch.Tensor, bucket: tuple[int, int]) -> torch.Tensor:
    """Scale float frames (T, C, H, W) so they cover `bucket`, then center-crop to it."""
    import torch.nn.functional as F  # here, not at the top: bucket picking runs before torch is imported

    height, width = frames.shape[-2:]
    target_height, target_width = bucket
    scale = max(target_height / height, target_width / width)
    scaled_height = max(target_height, round(height * scale))
    scaled_width = max(target_width, round(width * scale))
    if (scaled_height, scaled_width) != (height, width):
        frames = F.interpolate(
            frames, size=(scaled_height, scaled_width), mode="bilinear", align_corners=False, antialias=scale < 1
        )
    top = (scaled_height - target_height) // 2
    left = (scaled_width - target_width) // 2
    return frames[..., top : top + target_height, left : left + target_width]


def _on_grid(length: float, rules: ArchRules) -> int:
    return max(rules.size_multiple, rules.size_at_most(length))
