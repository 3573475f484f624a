"""What a model's `generate_single_image` takes and returns: one sample's settings and the clip it wrote.

Part of the model interface (toolkit/models/base_model.py): processes build these from their config
blocks and hand them to whatever model `model.arch` names.
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
