"""Generate small captioned demo clips: a coloured shape crossing a plain
background, with a sine tone whose pitch belongs to that shape.

The pairing (shape, colour, pitch) is fixed, so a LoRA trained on these clips
has something to learn in both modalities, and the captions say exactly what
is in each clip. Output is deterministic for the same arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from toolkit.data.media import AudioTrack
from toolkit.data.video_writer import write_video
from toolkit.errors import DataError


@dataclass(frozen=True)
class ShapeStyle:
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    tone_hz: float


@dataclass(frozen=True)
class Motion:
    description: str
    start: tuple[float, float]  # (y, x) of the shape's centre, as fractions of the frame
    end: tuple[float, float]


SHAPE_STYLES = (
    ShapeStyle("square", "red", (220, 40, 40), 440.0),
    ShapeStyle("circle", "blue", (40, 90, 230), 660.0),
    ShapeStyle("triangle", "green", (40, 190, 70), 550.0),
    ShapeStyle("diamond", "yellow", (230, 210, 40), 330.0),
)

MOTIONS = (
    Motion("left to right", (0.5, 0.2), (0.5, 0.8)),
    Motion("right to left", (0.5, 0.8), (0.5, 0.2)),
    Motion("top to bottom", (0.2, 0.5), (0.8, 0.5)),
    Motion("bottom to top", (0.8, 0.5), (0.2, 0.5)),
)

_TONE_AMPLITUDE = 0.5


@dataclass(frozen=True)
class DemoClip:
    video_path: Path
    caption_path: Path
    caption: str
    style: ShapeStyle
    motion: Motion


def make_demo_clips(
    folder: str | Path,
    count: int = 4,
    num_frames: int = 17,
    size: int = 64,
    fps: float = 24,
    sample_rate: int = 16000,
    seed: int = 0,
    with_audio: bool = True,
) -> list[DemoClip]:
    """Write `count` clips `demo_XX.mp4` plus `demo_XX.txt` captions into `folder`.

    Clip i uses style i % 4 and motion (i + i // 4) % 4, so the first four clips
    show four shapes moving four ways. `seed` varies the background shade and the
    shape's offset across the path. `with_audio=False` writes video-only clips.
    """
    folder = Path(folder)
    max_count = len(SHAPE_STYLES) * len(MOTIONS)
    if not 1 <= count <= max_count:
        raise DataError(f"make_demo_clips: count must be between 1 and {max_count}, got {count}")
    if size < 16 or size % 2:
        raise DataError(f"make_demo_clips: size must be an even number >= 16, got {size}")
    if num_frames < 1:
        raise DataError(f"make_demo_clips: num_frames must be at least 1, got {num_frames}")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for index in range(count):
        style = SHAPE_STYLES[index % len(SHAPE_STYLES)]
        motion = MOTIONS[(index + index // len(SHAPE_STYLES)) % len(MOTIONS)]
        background = int(rng.integers(16, 64))
        offset = float(rng.uniform(-0.08, 0.08))
        frames = render_frames(style, motion, num_frames, size, background, offset)
        audio = AudioTrack(sine_tone(style.tone_hz, num_frames / fps, sample_rate), sample_rate) if with_audio else None
        video_path = write_video(folder / f"demo_{index:02d}.mp4", frames, fps, audio)
        caption = f"a {style.colour} {style.shape} moving {motion.description}"
        if with_audio:
            caption += f", with a {style.tone_hz:g} Hz tone"
        caption_path = folder / f"demo_{index:02d}.txt"
        caption_path.write_text(caption + "\n", encoding="utf-8")
        clips.append(DemoClip(video_path, caption_path, caption, style, motion))
    return clips


def render_frames(
    style: ShapeStyle, motion: Motion, num_frames: int, size: int, background: int, offset: float
) -> torch.Tensor:
    """uint8 frames (T, size, size, 3): the shape moves linearly from start to end."""
    radius = size / 8
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    frames = np.full((num_frames, size, size, 3), background, dtype=np.uint8)
    for index in range(num_frames):
        progress = index / (num_frames - 1) if num_frames > 1 else 0.0
        centre_y = (motion.start[0] + (motion.end[0] - motion.start[0]) * progress + offset) * size
        centre_x = (motion.start[1] + (motion.end[1] - motion.start[1]) * progress + offset) * size
        mask = _shape_mask(style.shape, ys - centre_y, xs - centre_x, radius)
        frames[index][mask] = style.rgb
    return torch.from_numpy(frames)


def sine_tone(frequency_hz: float, duration_s: float, sample_rate: int) -> torch.Tensor:
    """Mono float32 waveform (1, samples) of a sine at `frequency_hz`."""
    num_samples = int(round(duration_s * sample_rate))
    times = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    return (_TONE_AMPLITUDE * torch.sin(2 * math.pi * frequency_hz * times)).to(torch.float32).unsqueeze(0)


def _shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, radius: float) -> np.ndarray:
    if shape == "square":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    if shape == "circle":
        return dy**2 + dx**2 <= radius**2
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= radius * 1.3
    if shape == "triangle":
        # Apex up, base at dy = radius; half-width grows linearly from apex to base.
        return (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise DataError(f"unknown demo shape {shape!r}; use one of {[style.shape for style in SHAPE_STYLES]}")
