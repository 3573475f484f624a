"""Media data layer: decode clips and images, bucket them, cache their encodings.

    from toolkit.data import MediaDataset, LatentCache

The names below are imported on first use (PEP 562), so `toolkit.data.files`,
which the pre-load checks use, does not pull in torch and PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioTrack": "toolkit.data.media",
    "LatentCache": "toolkit.data.cache",
    "MediaDataset": "toolkit.data.dataset",
    "MediaItem": "toolkit.data.dataset",
    "PlannedItem": "toolkit.data.dataset",
    "TextEmbeddingCache": "toolkit.data.cache",
    "VideoClip": "toolkit.data.media",
    "make_demo_clips": "toolkit.data.demo_clips",
    "pick_bucket": "toolkit.data.buckets",
    "probe_media": "toolkit.data.media",
    "read_video": "toolkit.data.media",
    "resize_and_crop": "toolkit.data.buckets",
    "write_video": "toolkit.data.video_writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
