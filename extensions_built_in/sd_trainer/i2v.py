"""Image-to-video training: the first latent frame of a clip is the clean condition.

What LTX2ImageToVideoPipeline does when sampling, training does too: the
first latent frame's tokens keep the clean latents, get timestep 0, and
the transformer learns to denoise the other frames given them. Their
prediction is not trained (the pipeline never uses it), so they are left out
of the video loss. Audio is noised and trained as in text-to-video.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .flow_matching import add_noise


@dataclass
class FirstFrameCondition:
    """Which clips of a batch are conditioned, as a mask over the video latents.

    `mask` is (B, 1, F, H, W): 1 on the first latent frame of conditioned
    clips, 0 elsewhere.
    """

    mask: torch.Tensor

    @classmethod
    def for_clips(cls, conditioned: list[bool], video_latents: torch.Tensor) -> "FirstFrameCondition":
        batch, _, frames, height, width = video_latents.shape
        mask = torch.zeros(batch, 1, frames, height, width, dtype=video_latents.dtype, device=video_latents.device)
        for index, is_conditioned in enumerate(conditioned):
            if is_conditioned:
                mask[index, :, 0] = 1.0
        return cls(mask)

    def keep_clean(self, noisy_video: torch.Tensor, clean_video: torch.Tensor) -> torch.Tensor:
        """The noisy latents with the condition frames replaced by their clean latents."""
        return torch.where(self.mask.bool(), clean_video, noisy_video)

    def token_sigmas(self, sigmas: torch.Tensor) -> torch.Tensor:
        """Per-token noise levels (B, F*H*W) in the transformer's token order: 0 on condition tokens."""
        return sigmas[:, None] * (1 - self.mask.flatten(1).to(sigmas.dtype))

    @property
    def loss_mask(self) -> torch.Tensor:
        """(B, 1, F, H, W): 1 where the video loss counts, 0 on condition frames."""
        return 1 - self.mask


def draw_conditioned(generator: torch.Generator, probability: float) -> bool:
    """Whether a clip is trained image-to-video. Always draws, so the generator advances the same either way."""
    draw = torch.rand(1, generator=generator).item()
    return probability >= 1.0 or draw < probability


def noised_inputs(
    video: torch.Tensor,
    audio: torch.Tensor,
    noise_video: torch.Tensor,
    noise_audio: torch.Tensor,
    sigmas: torch.Tensor,
    conditioned: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """What the transformer is given, as training makes it: both streams noised to `sigmas`, and for the
    `conditioned` clips the first latent frame kept clean at noise level 0.

    Returns (noisy video, noisy audio, per-token video sigmas, video loss mask); the last two are None
    when no clip is conditioned.
    """
    noisy_video = add_noise(video, noise_video, sigmas)
    noisy_audio = add_noise(audio, noise_audio, sigmas)
    if not any(conditioned):
        return noisy_video, noisy_audio, None, None
    condition = FirstFrameCondition.for_clips(conditioned, video)
    return condition.keep_clean(noisy_video, video), noisy_audio, condition.token_sigmas(sigmas), condition.loss_mask
