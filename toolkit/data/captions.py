"""Caption augmentation: ai-toolkit's `shuffle_tokens`."""

from __future__ import annotations

import random


def shuffle_caption(caption: str, seed: str) -> str:
    """The comma-separated parts of `caption` in a seeded random order, joined by ", ".

    Empty parts are dropped and each part is stripped, as ai-toolkit does; a
    caption without commas comes back unchanged.
    """
    parts = [part.strip() for part in caption.split(",")]
    parts = [part for part in parts if part]
    if len(parts) < 2:
        return caption
    random.Random(seed).shuffle(parts)
    return ", ".join(parts)
