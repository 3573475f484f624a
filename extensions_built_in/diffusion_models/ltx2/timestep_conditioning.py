"""The noise-level conditioning LTX-2's transformer gets: exactly what diffusers' pipelines pass.

`LTX2Pipeline` and `LTX2ImageToVideoPipeline` (diffusers 0.42.1) call the transformer, in each
denoising step, with the scheduler's timestep `t = sigma * 1000` as:

- `timestep`: `t` per sample (B,); image-to-video passes it per video token (B, tokens), 0 on the
  clean first latent frame (`t * (1 - conditioning_mask)`);
- `audio_timestep`: `t` per sample (text-to-video leaves it to default to `timestep`);
- `sigma`: `t` per sample, never per token, at the timestep scale (x1000): LTX-2.3's prompt AdaLN
  (`prompt_adaln`, `cross_attn_mod`) was built for it; `audio_sigma` defaults to it;
- `use_cross_timestep=True` (the pipelines' default): the audio<->video cross-attention modulation
  of each stream reads the other stream's `sigma` instead of its own `timestep`. In image-to-video
  that keeps the condition tokens' 0 out of that modulation.
- all of them in float32, whatever the model's dtype (the scheduler's timesteps are float32; the
  transformer embeds them sinusoidally before casting, and bf16 would round t to a multiple of 4).

The call is the same for 2.0, 2.3 and 2.5; what differs is what each version reads: all of them read
`sigma` in the cross-attention modulation; 2.3 and 2.5 also in their prompt AdaLN (2.0 has none).

LTX-2.5's `use_keyframes_abs_pos_embedding`: the transformer adds a learned embedding to tokens
marked by `video_keyframes_mask`. Neither pipeline above passes that mask (diffusers' DFR pipelines
mark the causal first latent frame and generated keyframe slots). We sample through those two
pipelines, so training passes no mask either: the LoRA learns the forward it is used with there.
A user sampling a 2.5 LoRA through the DFR pipelines gets first-frame tokens with the embedding added.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The scheduler's num_train_timesteps, which the pipelines' `t = sigma * 1000` uses.
TIMESTEP_SCALE = 1000.0
USE_CROSS_TIMESTEP = True


@dataclass(frozen=True)
class TimestepConditioning:
    """The transformer's timestep arguments for one batch, as the pipelines build them."""

    timestep: torch.Tensor  # (B,) or (B, video tokens): t for the video stream
    audio_timestep: torch.Tensor  # (B,)
    sigma: torch.Tensor  # (B,): t for the video prompt AdaLN and the audio stream's cross-attention modulation
    audio_sigma: torch.Tensor  # (B,)
    use_cross_timestep: bool = USE_CROSS_TIMESTEP

    @classmethod
    def for_noise_levels(cls, sigmas: torch.Tensor, video_sigmas: torch.Tensor | None = None) -> "TimestepConditioning":
        """From the noise levels in [0, 1]: `sigmas` (B,) per clip, `video_sigmas` (B, tokens) per video token
        where some tokens are clean conditions (image-to-video)."""
        t = sigmas.float() * TIMESTEP_SCALE
        video_t = t if video_sigmas is None else video_sigmas.float() * TIMESTEP_SCALE
        return cls(timestep=video_t, audio_timestep=t, sigma=t, audio_sigma=t)

    @property
    def per_token(self) -> bool:
        return self.timestep.ndim == 2

    def trace_fields(self) -> dict:
        """What the get_noise_prediction trace shows of it: references only, described by the tracer when on."""
        return {
            "timestep_scale": TIMESTEP_SCALE,
            "use_cross_timestep": self.use_cross_timestep,
            "per_token_video_timesteps": self.per_token,
            "video_timestep": self.timestep,
            "audio_timestep": self.audio_timestep,
            "sigma": self.sigma,
        }

    def transformer_kwargs(self) -> dict:
        return {
            "timestep": self.timestep,
            "audio_timestep": self.audio_timestep,
            "sigma": self.sigma,
            "audio_sigma": self.audio_sigma,
            "use_cross_timestep": self.use_cross_timestep,
        }
