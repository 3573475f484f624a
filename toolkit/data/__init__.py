"""Media data layer: decode clips and images, bucket them, batch them, cache their encodings.

    from toolkit.data import MediaDataset, BucketBatchSampler, collate_media_items
"""

from __future__ import annotations

from toolkit.data.batching import BucketBatchSampler, MediaBatch, collate_media_items
from toolkit.data.buckets import pick_bucket, resize_and_crop
from toolkit.data.cache import LatentCache, TextEmbeddingCache
from toolkit.data.dataset import MediaDataset, MediaItem
from toolkit.data.demo_clips import make_demo_clips
from toolkit.data.media import AudioTrack, VideoClip, probe_media, read_video
from toolkit.data.video_writer import write_video

__all__ = [
    "AudioTrack",
    "BucketBatchSampler",
    "LatentCache",
    "MediaBatch",
    "MediaDataset",
    "MediaItem",
    "TextEmbeddingCache",
    "VideoClip",
    "collate_media_items",
    "make_demo_clips",
    "pick_bucket",
    "probe_media",
    "read_video",
    "resize_and_crop",
    "write_video",
]
