"""How a media file becomes a training clip: which frames, at what rate, in which bucket, and what to tell the user.

Plain Python (no torch): the dataset plans each clip with `plan_clip`, and the
check before loading (toolkit/preflight) runs the same rules on the same headers,
so what the dry run says is what training does.

The short-clip rule. A video that holds fewer frames than a training clip needs
(`num_frames`; without `shrink_video_to_frames`, the source frames that
`num_frames` at `fps` span) is spread over its whole length, frames repeated,
whatever `shrink_video_to_frames` says: ai-toolkit's rule (its
`load_and_process_video` stretches such a clip the same way). Without `fps` the
spread frames are labelled at the rate that keeps real time. A video of a
single frame is a still: it trains as one frame, as an image does (repeating it
would teach a frozen clip, and its audio would be stretched many times over).
Either way each such clip gets a notice.

What the model takes (frame counts, bucket sizes, the rate a still trains at) is its arch's
answer (`ClipSettings.rules`, toolkit/models/arch_rules.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.data.buckets import pick_bucket

if TYPE_CHECKING:
    from toolkit.data.probe import MediaInfo  # (PyAV is imported only where headers are read)
    from toolkit.models.arch_rules import ArchRules

# Frames scaled up more than this look blurred: the model learns the blur. ai-toolkit upscales small
# clips without a word; here it trains the same way but says so, before loading.
UPSCALE_NOTICE_ABOVE = 2.0

# Small tolerance so that a target time landing exactly on a source frame
# boundary (after float arithmetic) picks that frame, not the one before.
_FRAME_TIME_EPSILON = 1e-6


@dataclass(frozen=True)
class ClipSettings:
    """The dataset settings that decide a clip's frames, rate and bucket (the `datasets:` keys of the same names)."""

    num_frames: int
    fps: float | None
    resolutions: Sequence[int]
    shrink_video_to_frames: bool
    auto_frame_count: bool
    loads_audio: bool  # audio is read (the dataset's `audio: true`)
    rules: ArchRules  # the model's frame counts and sizes; a still trains at its `default_fps`


@dataclass(frozen=True)
class MediaNotice:
    """Something the trainer does to a file that the user should know: `key` is the dataset key it concerns."""

    path: Path
    key: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}: {self.text}"


@dataclass(frozen=True)
class ClipPlan:
    """What a file trains as: `num_frames` frames, spread over the whole clip or from its start, at `fps`."""

    num_frames: int
    spread: bool
    fps: float
    bucket: tuple[int, int]
    notices: tuple[MediaNotice, ...] = field(default=())


def plan_clip(info: MediaInfo, settings: ClipSettings, frame_count: int | None) -> ClipPlan:
    """The plan for one file; `frame_count` is the video's real frame count (None: unknown, no short-clip rule)."""
    bucket = pick_bucket(info.height, info.width, settings.resolutions, settings.rules)
    notices = [*_upscale_notices(info, bucket, settings), *_audio_notices(info, settings)]
    if info.is_image:
        # A still has no frame rate of its own: at the one the model's pipelines default to, a 1-frame clip
        # conditions the model the way inference will.
        fps = settings.fps if settings.fps is not None else settings.rules.default_fps
        return ClipPlan(1, False, float(fps), bucket, tuple(notices))
    num_frames, spread, short = _frames(info, settings, frame_count)
    notices += short
    fps = settings.fps if settings.fps is not None else info.fps
    if spread and settings.fps is None and frame_count is not None:
        fps = real_time_fps(num_frames, frame_count, info.fps)
    return ClipPlan(num_frames, spread, float(fps), bucket, tuple(notices))


def needs_missing_audio(info: MediaInfo, loads_audio: bool, missing_audio: str) -> bool:
    """A file without an audio track while audio is trained and `missing_audio` is not `silence`: an error."""
    return loads_audio and not info.has_audio and missing_audio != "silence"


def spread_frame_indices(num_frames: int, frame_count: int) -> list[int]:
    """`num_frames` source frame indices spread evenly from the first frame to the last of `frame_count`."""
    last = frame_count - 1
    if num_frames == 1:
        return [0]
    return [min(last, int(round(i * last / (num_frames - 1)))) for i in range(num_frames)]


def real_time_fps(num_frames: int, frame_count: int, source_fps: float) -> float:
    """The rate at which frames spread over `frame_count` source frames play in real time."""
    if num_frames < 2 or frame_count < 2:
        return source_fps
    return source_fps * (num_frames - 1) / (frame_count - 1)


def source_frame_indices(num_frames: int, source_fps: float, clip_fps: float) -> list[int]:
    """Index of the source frame shown at each output frame's time (i / clip_fps)."""
    return [int(i / clip_fps * source_fps + _FRAME_TIME_EPSILON) for i in range(num_frames)]


def _frames(info: MediaInfo, settings: ClipSettings, frame_count: int | None) -> tuple[int, bool, list[MediaNotice]]:
    """(frames, spread, notices): `num_frames`, or all the clip holds (`auto_frame_count`), or the short-clip rule."""
    clip_fps = settings.fps if settings.fps is not None else info.fps
    if settings.auto_frame_count:
        if frame_count is None:
            return settings.num_frames, settings.shrink_video_to_frames, []
        # Output frame i shows source frame floor(i * source_fps / clip_fps): count those inside the clip.
        fitting = int((frame_count - 1) * clip_fps / info.fps + _FRAME_TIME_EPSILON) + 1
        return settings.rules.frame_count_at_most(fitting), settings.shrink_video_to_frames, []
    if frame_count is None or settings.num_frames == 1:
        return settings.num_frames, settings.shrink_video_to_frames, []
    if frame_count == 1:
        return 1, False, [MediaNotice(
            info.path, "num_frames",
            f"a video of 1 frame: trained as a still (1 frame), as an image is, not as num_frames={settings.num_frames}",
        )]
    needed, asked = settings.num_frames, f"num_frames={settings.num_frames}"
    if not settings.shrink_video_to_frames and settings.fps is not None:
        needed = source_frame_indices(settings.num_frames, info.fps, clip_fps)[-1] + 1
        asked = f"the {needed} that num_frames={settings.num_frames} at fps {clip_fps:g} spans"
    if frame_count >= needed:
        return settings.num_frames, settings.shrink_video_to_frames, []
    return settings.num_frames, True, [MediaNotice(
        info.path, "num_frames",
        f"has {frame_count} frames at {info.fps:g} fps, fewer than {asked}: its {settings.num_frames} frames are "
        f"spread over the whole clip, frames repeated (ai-toolkit's rule); lower num_frames to train it without "
        f"repeats",
    )]


def _upscale_notices(info: MediaInfo, bucket: tuple[int, int], settings: ClipSettings) -> list[MediaNotice]:
    scale = max(bucket[0] / info.height, bucket[1] / info.width)
    if scale <= UPSCALE_NOTICE_ABOVE:
        return []
    short_side = min(info.height, info.width)
    return [MediaNotice(
        info.path, "resolution",
        f"{info.width}x{info.height} is scaled up {scale:.3g}x to its {bucket[1]}x{bucket[0]} bucket "
        f"(resolution {list(settings.resolutions)}); frames scaled up more than {UPSCALE_NOTICE_ABOVE:g}x are "
        f"blurred and the LoRA learns the blur: add a resolution near the clip's short side ({short_side} px, "
        f"rounded to a multiple of {settings.rules.size_multiple}), or use larger clips",
    )]


def _audio_notices(info: MediaInfo, settings: ClipSettings) -> list[MediaNotice]:
    if not settings.loads_audio or info.audio_channels <= 2:
        return []
    return [MediaNotice(
        info.path, "audio",
        f"{info.audio_channels}-channel audio ({info.audio_layout}) is downmixed to stereo (FFmpeg's standard "
        "downmix); convert the file to stereo yourself for another mix, or set audio: false to train the video only",
    )]
