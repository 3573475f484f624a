"""Decode training media (video with its audio track, or a still image) into tensors.

Everything that touches PyAV or PIL lives here, so the dataset above works on
plain tensors and every decode failure becomes one `DataError` that names the
file and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from toolkit.data.audio import stretch_audio
from toolkit.data.clip_rules import real_time_fps, source_frame_indices, spread_frame_indices
from toolkit.data.files import is_image
from toolkit.data.images import image_to_rgb
from toolkit.data.probe import (
    MediaInfo,
    declared_frame_count,
    open_container,
    read_media_info,
    stream_fps,
    video_stream,
)
from toolkit.errors import DataError
from toolkit.extensions import arch_rules, default_arch

__all__ = [
    "AudioTrack", "MediaInfo", "VideoClip", "count_frames", "probe_media", "read_video",
    "real_time_fps", "source_frame_indices", "spread_frame_indices",
]


@dataclass
class AudioTrack:
    """Decoded audio: float32 waveform (channels, samples) in [-1, 1].

    `source_channels` is how many channels the file's track had when it was decoded
    from one (more than two are downmixed to stereo); 0 when not decoded from a file.
    """

    waveform: torch.Tensor
    sample_rate: int
    source_channels: int = 0

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate


@dataclass
class VideoClip:
    """Frames sampled from a media file (from its start, or spread over all of it), with the matching audio.

    `duration_s` is the length of the sampled frames (`num_frames / fps`), not of
    the source file; `audio` covers the same span (it may be shorter when the
    source's audio track ends early) and is None when the file has no audio.
    `source_indices` says which source frame each sampled frame is.
    """

    frames: torch.Tensor  # uint8 (T, H, W, 3)
    fps: float
    duration_s: float
    path: Path
    audio: AudioTrack | None
    source_indices: tuple[int, ...] = ()

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def probe_media(path: str | Path) -> MediaInfo:
    """`read_media_info`, checked by decoding: an image in full, a video's first frame (whose size
    is the one reported), to catch files whose headers parse but whose data does not."""
    path = Path(path)
    info = read_media_info(path)
    if info.is_image:
        frames = _read_image(path)
        info.height, info.width = frames.shape[1], frames.shape[2]
        return info
    with open_container(path) as container:
        stream = video_stream(container, path)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise DataError(
                f"{path}: cannot decode the first video frame ({error}); re-encode or remove the file"
            ) from error
        if first is None:
            raise DataError(f"{path}: the video stream holds no frames; re-encode or remove the file")
        info.height, info.width = first.height, first.width
    return info


def read_video(
    path: str | Path, num_frames: int, fps: float | None = None, spread: bool = False, audio_sample_rate: int | None = None
) -> VideoClip:
    """Take `num_frames` frames of `path`, and the audio that plays with them.

    By default they are consecutive from the start: with `fps` set, frames are
    picked at that rate (frames are dropped or repeated; no interpolation);
    otherwise the clip keeps its own rate.

    With `spread` (ai-toolkit's `shrink_video_to_frames`), the frames are spread
    evenly from the first frame to the last, whatever the clip's length (a clip
    shorter than `num_frames` repeats frames). They are labelled `fps` when it is
    set, else the rate that keeps real time (`source_fps * (num_frames - 1) /
    (frames - 1)`); the whole audio track is stretched to their duration.

    The audio is decoded at `audio_sample_rate` (None: the track's own rate): libswresample
    converts the samples, downmixes more than two channels to stereo and resamples in one
    pass as the track is decoded.

    An image is a 1-frame clip whatever `num_frames` says, with no audio, at `fps`;
    a still has no rate of its own, so without one it gets the default arch's
    `default_fps` (the dataset passes its own arch's).
    """
    path = Path(path)
    if num_frames < 1:
        raise DataError(
            f"{path}: num_frames must be at least 1, got {num_frames}; fix num_frames in the dataset config"
        )
    if fps is not None and fps <= 0:
        raise DataError(f"{path}: fps must be positive, got {fps}; fix fps in the dataset config")
    if is_image(path):
        clip_fps = float(fps) if fps is not None else arch_rules(default_arch()).default_fps
        return VideoClip(_read_image(path), clip_fps, 1.0 / clip_fps, path, None, (0,))
    if spread:
        return _read_spread(path, num_frames, fps, audio_sample_rate)

    with open_container(path) as container:
        stream = video_stream(container, path)
        source_fps = stream_fps(stream, path)
        clip_fps = float(fps) if fps is not None else source_fps
        source_indices = source_frame_indices(num_frames, source_fps, clip_fps)
        frames, decoded = _decode_frames(container, stream, source_indices, path)
        if frames is None:
            raise DataError(
                f"{path}: clip too short: it has {decoded} frames at {source_fps:g} fps, but num_frames={num_frames} "
                f"at {clip_fps:g} fps needs {source_indices[-1] + 1} source frames; lower num_frames (or fps) in the "
                f"dataset config, set shrink_video_to_frames: true, or remove the clip"
            )
        duration_s = num_frames / clip_fps
        audio = None
        if container.streams.audio:
            audio = _decode_audio(container, container.streams.audio[0], duration_s, path, audio_sample_rate)
    return VideoClip(frames, clip_fps, duration_s, path, audio, tuple(source_indices))


def count_frames(path: str | Path) -> int:
    """Decode the whole video stream to count its frames (for containers that do not declare the count)."""
    path = Path(path)
    with open_container(path) as container:
        stream = video_stream(container, path)
        try:
            return sum(1 for _ in container.decode(stream))
        except av.error.FFmpegError as error:
            raise DataError(
                f"{path}: video decoding failed while counting frames ({error}); re-encode or remove the file"
            ) from error


def _read_spread(path: Path, num_frames: int, fps: float | None, audio_sample_rate: int | None) -> VideoClip:
    with open_container(path) as container:
        stream = video_stream(container, path)
        source_fps = stream_fps(stream, path)
        frame_count = declared_frame_count(stream, source_fps) or count_frames(path)
        source_indices = spread_frame_indices(num_frames, frame_count)
        frames, decoded = _decode_frames(container, stream, source_indices, path)
        if frames is None:
            # The header promised more frames than the stream holds: spread over the frames there are.
            if decoded < 1:
                raise DataError(f"{path}: the video stream holds no frames; re-encode or remove the file")
            frame_count = decoded
            source_indices = spread_frame_indices(num_frames, frame_count)
            container.seek(0)
            frames, _ = _decode_frames(container, stream, source_indices, path)
        clip_fps = float(fps) if fps is not None else real_time_fps(num_frames, frame_count, source_fps)
        duration_s = num_frames / clip_fps
        audio = None
        if container.streams.audio:
            duration = frame_count / source_fps
            whole = _decode_audio(container, container.streams.audio[0], duration, path, audio_sample_rate)
            samples = max(1, int(round(duration_s * whole.sample_rate)))
            audio = AudioTrack(stretch_audio(whole.waveform, samples), whole.sample_rate, whole.source_channels)
    return VideoClip(frames, clip_fps, duration_s, path, audio, tuple(source_indices))


def _decode_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    source_indices: list[int],
    path: Path,
) -> tuple[torch.Tensor | None, int]:
    """The frames at `source_indices` and how many frames were decoded; None when the stream ends first."""
    needed = max(source_indices) + 1
    wanted = set(source_indices)
    kept: dict[int, np.ndarray] = {}
    decoded = 0
    try:
        for frame in container.decode(stream):
            if decoded in wanted:
                kept[decoded] = frame.to_ndarray(format="rgb24")
            decoded += 1
            if decoded >= needed:
                break
    except av.error.FFmpegError as error:
        raise DataError(
            f"{path}: video decoding failed after {decoded} frames ({error}); re-encode or remove the file"
        ) from error
    if decoded < needed:
        return None, decoded
    return torch.from_numpy(np.stack([kept[index] for index in source_indices])), decoded


def _decode_audio(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    duration_s: float,
    path: Path,
    sample_rate: int | None,
) -> AudioTrack:
    """Decode the first `duration_s` seconds of audio as float32 planar samples at `sample_rate` (None: the
    stream's own)."""
    sample_rate = sample_rate or stream.rate
    wanted = int(round(duration_s * sample_rate))
    resampler = None
    source_channels = 0
    chunks: list[np.ndarray] = []
    have = 0
    try:
        container.seek(0)  # the video pass moved the read position past the audio we want
        for frame in container.decode(stream):
            if resampler is None:
                # One resampler for the stream: fltp gives (channels, samples) floats in [-1, 1] whatever
                # the codec stores; more than two channels (5.1, 7.1, ...) are downmixed to stereo by
                # FFmpeg's standard matrix (centre and surrounds at -3 dB); the rate becomes `sample_rate`
                # (band-limited, so a tone keeps its pitch and nothing above the new Nyquist folds back).
                source_channels = len(frame.layout.channels)
                layout = frame.layout if source_channels <= 2 else "stereo"
                resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
            have += _collect(resampler.resample(frame), chunks)
            if have >= wanted:
                break
        else:
            if resampler is not None:
                _collect(resampler.resample(None), chunks)  # the stream ended: the samples libswresample holds back
    except av.error.FFmpegError as error:
        raise DataError(
            f"{path}: audio decoding failed ({error}); re-encode the audio track or remove the file"
        ) from error
    if not chunks:
        raise DataError(f"{path}: the audio stream holds no samples; re-encode the audio track or remove it")
    waveform = np.concatenate(chunks, axis=1)[:, :wanted].astype(np.float32)
    return AudioTrack(torch.from_numpy(np.ascontiguousarray(waveform)), int(sample_rate), source_channels)


def _collect(frames: list[av.AudioFrame], chunks: list[np.ndarray]) -> int:
    """Add the resampler's output to `chunks`; how many samples it added."""
    arrays = [frame.to_ndarray() for frame in frames]
    chunks.extend(arrays)
    return sum(array.shape[1] for array in arrays)


def _read_image(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset folder_path")
    try:
        with Image.open(path) as image:
            pixels = image_to_rgb(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot read as an image ({error}); re-save or remove the file") from error
    return torch.from_numpy(pixels.copy()).unsqueeze(0)
