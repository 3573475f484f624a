"""What a model's `generate_single_image` takes and returns: one sample's settings and the clip it wrote, and the
one writer of that clip.

Part of the model interface (toolkit/models/base_model.py): processes build these from their config
blocks and hand them to whatever model `model.arch` names; every model writes its sample with `write_clip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GenerationSettings:
    """One sample's settings (from `sample:` or `generate:` in the config)."""

    width: int
    height: int
    num_frames: int
    fps: float
    steps: int
    guidance_scale: float
    seed: int
    negative_prompt: str = ""
    control_image: str | None = None  # image-to-video: the image the first frame starts from (ctrl_img)

    @classmethod
    def from_sampling(cls, sampling, seed: int, control_image: str | None = None) -> "GenerationSettings":
        """From a `sample:` or `generate:` config block, for one prompt's seed and control image."""
        return cls(
            width=sampling.width,
            height=sampling.height,
            num_frames=sampling.num_frames,
            fps=sampling.fps,
            steps=sampling.sample_steps,
            guidance_scale=sampling.guidance_scale,
            seed=seed,
            negative_prompt=sampling.neg,
            control_image=control_image,
        )


@dataclass(frozen=True)
class GeneratedClip:
    """The file one sample was written to, and what it holds."""

    path: Path
    num_frames: int
    height: int
    width: int
    audio_samples: int
    sample_rate: int


def write_clip(path: Path, frames, audio, sample_rate: int, fps: float) -> GeneratedClip:
    """Write frames (T, H, W, 3) uint8 and audio (channels, samples) in [-1, 1] as an .mp4 (H.264 + AAC),
    atomically: a temp file renamed into place."""
    from toolkit.atomic_write import atomic_write
    from toolkit.data import AudioTrack, write_video

    with atomic_write(path) as temporary:
        write_video(temporary, frames, fps, AudioTrack(waveform=audio.clamp(-1, 1), sample_rate=sample_rate))
    return GeneratedClip(
        path=path,
        num_frames=frames.shape[0],
        height=frames.shape[1],
        width=frames.shape[2],
        audio_samples=audio.shape[-1],
        sample_rate=sample_rate,
    )
