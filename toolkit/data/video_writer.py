"""Write frames (and an optional audio track) to an .mp4 with PyAV.

H.264 video and AAC audio, single-threaded so the same input gives the same
bytes (the demo clips are committed, and tests compare them).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from toolkit.data.media import AudioTrack
from toolkit.errors import DataError

_AUDIO_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_video(path: str | Path, frames: torch.Tensor, fps: float, audio: AudioTrack | None = None) -> Path:
    """Encode uint8 frames (T, H, W, 3) at `fps` to `path`, with `audio` as AAC when given.

    H and W must be even (yuv420p); audio must be mono, stereo or 5.1 (6 channels) floats in [-1, 1].
    """
    path = Path(path)
    _check_frames(frames, path)
    if audio is not None and audio.waveform.shape[0] not in _AUDIO_LAYOUTS:
        raise DataError(
            f"{path}: audio has {audio.waveform.shape[0]} channels; only mono, stereo or 5.1 (6) can be written"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(path), mode="w") as container:
            video_stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            video_stream.height, video_stream.width = frames.shape[1], frames.shape[2]
            video_stream.pix_fmt = "yuv420p"
            video_stream.codec_context.thread_count = 1
            video_stream.options = {"crf": "18", "threads": "1"}
            audio_stream = None
            if audio is not None:
                audio_stream = container.add_stream("aac", rate=audio.sample_rate)
                audio_stream.layout = _AUDIO_LAYOUTS[audio.waveform.shape[0]]
            _encode_frames(container, video_stream, frames)
            if audio is not None:
                _encode_audio(container, audio_stream, audio)
    except av.error.FFmpegError as error:
        raise DataError(
            f"{path}: encoding failed ({error}); check the folder is writable and has free space"
        ) from error
    return path


def _check_frames(frames: torch.Tensor, path: Path) -> None:
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise DataError(f"{path}: frame size {frames.shape[1]}x{frames.shape[2]} must be even for H.264 (yuv420p)")


def _encode_frames(
    container: av.container.OutputContainer, stream: av.video.stream.VideoStream, frames: torch.Tensor
) -> None:
    for index, pixels in enumerate(frames.numpy()):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def _encode_audio(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, audio: AudioTrack
) -> None:
    samples = audio.waveform.detach().to(torch.float32).clamp(-1.0, 1.0).cpu().numpy()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=stream.layout)
    frame.sample_rate = audio.sample_rate
    frame.pts = 0
    container.mux(stream.encode(frame))
    container.mux(stream.encode())
