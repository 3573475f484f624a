"""What a media file holds, read from its headers: PyAV's container metadata, PIL's image header. No torch.

Nothing here decodes a frame or a sample, so the check that runs before any
model loads (toolkit/preflight) can read every file of a dataset in a fraction
of a second; the dataset reads files with the same functions (toolkit/data/media.py
adds the decoding), so both see the same sizes, rates, lengths and channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from toolkit.data.files import is_image
from toolkit.errors import DataError

# EXIF orientations that turn the picture a quarter (transpose, 90, transverse, 270): width and height swap.
_QUARTER_TURNS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


@dataclass
class MediaInfo:
    """What a file holds, read from its headers without decoding all of it.

    `audio_channels` is the first audio stream's channel count (0 without audio), `audio_layout` its
    layout's name ("stereo", "5.1", ...); `image_mode` is PIL's mode of an image ("" for a video).
    """

    path: Path
    height: int
    width: int
    fps: float | None  # None for still images
    frame_count: int | None  # None when the container does not say
    has_audio: bool
    is_image: bool
    audio_channels: int = 0
    audio_layout: str = ""
    image_mode: str = ""


def read_media_info(path: str | Path) -> MediaInfo:
    """Size, frame rate, declared frame count and audio channels from the headers alone."""
    path = Path(path)
    if is_image(path):
        return _image_info(path)
    with open_container(path) as container:
        stream = video_stream(container, path)
        source_fps = stream_fps(stream, path)
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            path=path,
            height=stream.codec_context.height,
            width=stream.codec_context.width,
            fps=source_fps,
            frame_count=declared_frame_count(stream, source_fps),
            has_audio=audio is not None,
            is_image=False,
            audio_channels=audio.codec_context.channels if audio is not None else 0,
            audio_layout=audio.codec_context.layout.name if audio is not None else "",
        )


def open_container(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset folder_path")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise DataError(f"{path}: cannot open as a video ({error}); re-encode or remove the file") from error


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise DataError(f"{path}: no video stream in the file; remove it from the dataset folder")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def stream_fps(stream: av.video.stream.VideoStream, path: Path) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
        raise DataError(f"{path}: the video stream declares no frame rate; re-encode it with a constant frame rate")
    return float(rate)


def declared_frame_count(stream: av.video.stream.VideoStream, source_fps: float) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return int(round(float(stream.duration * stream.time_base) * source_fps))
    return None


def _image_info(path: Path) -> MediaInfo:
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset folder_path")
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            mode = image.mode
            if image.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot read as an image ({error}); re-save or remove the file") from error
    return MediaInfo(path, height, width, None, 1, False, True, image_mode=mode)
