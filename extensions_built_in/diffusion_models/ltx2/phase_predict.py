"""LTX2Model's get_noise_prediction: the transformer's velocity for noisy latents (an object LTX2Model owns)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toolkit.models.model_inputs import NoisePrediction, PromptEmbeds
from toolkit.trace import get_tracer

from . import latent_layout
from .timestep_conditioning import TimestepConditioning


class PredictPhase:
    """get_noise_prediction on the model's transformer (read from `components` at call time: the one that trains,
    sharded or not), in the model's dtype."""

    def __init__(self, components: dict, dtype: torch.dtype):
        self.components = components
        self.dtype = dtype

    # -- get_noise_prediction ----------------------------------------------
    def get_noise_prediction(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        sigmas: torch.Tensor,
        prompt: PromptEmbeds,
        fps: float | Sequence[float],
        video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        """The transformer's velocity for noisy video (B, C, F, H, W) and audio (B, C, L, M) latents.

        `sigmas` (B,) is the noise level in [0, 1]; `video_sigmas` (B, tokens) overrides it per video
        token (image-to-video keeps the first frame's tokens at 0). `fps` is one frame rate for the
        batch or one per clip: it scales the time axis of the video's positions (RoPE), so clips of
        different rates in one batch each get their own. The transformer is called exactly as
        LTX2Pipeline / LTX2ImageToVideoPipeline call it (see `timestep_conditioning`), so a LoRA
        trains on the forward it is sampled with.
        """
        transformer = self.components["transformer"]
        tracer = get_tracer()
        batch, _, frames, height, width = video_latents.shape
        audio_length = audio_latents.shape[2]
        conditioning = TimestepConditioning.for_noise_levels(sigmas, video_sigmas)
        rates = [float(fps)] * batch if isinstance(fps, (int, float)) else [float(rate) for rate in fps]
        if len(rates) != batch:
            raise ValueError(f"get_noise_prediction: {len(rates)} frame rates for a batch of {batch} clips")
        with tracer.span(
            "get_noise_prediction",
            conditioning.trace_fields,
            video_latents=video_latents,
            audio_latents=audio_latents,
            sigmas=sigmas,
            fps=fps,
        ) as span:
            video_tokens = latent_layout.pack_video(video_latents).to(self.dtype)
            audio_tokens = latent_layout.pack_audio(audio_latents).to(self.dtype)
            if video_sigmas is not None:
                # Image-to-video: tokens at noise level 0 are the clean condition (the first latent frame).
                tracer.event(
                    "i2v_conditioning",
                    lambda: {"tokens_fixed_per_clip": (video_sigmas == 0).sum(dim=1)},
                    applied=True,
                    tokens_per_clip=video_tokens.shape[1],
                    tokens_per_frame=height * width,
                )
            video_pred, audio_pred = transformer(
                hidden_states=video_tokens,
                audio_hidden_states=audio_tokens,
                encoder_hidden_states=prompt["video"].to(self.dtype),
                audio_encoder_hidden_states=prompt["audio"].to(self.dtype),
                **conditioning.transformer_kwargs(),
                encoder_attention_mask=prompt.attention_mask,
                audio_encoder_attention_mask=prompt.attention_mask,
                num_frames=frames,
                height=height,
                width=width,
                fps=rates[0],
                video_coords=_video_coords(transformer, rates, frames, height, width, video_tokens.device),
                audio_num_frames=audio_length,
                return_dict=False,
            )
            prediction = NoisePrediction(
                video=latent_layout.unpack_video(video_pred.float(), frames, height, width),
                audio=latent_layout.unpack_audio(audio_pred.float(), audio_latents.shape[1]),
            )
            span.set(video_prediction=prediction.video, audio_prediction=prediction.audio)
        return prediction


def _video_coords(transformer, rates: list[float], frames: int, height: int, width: int, device) -> torch.Tensor | None:
    """The video positions for clips of different frame rates; None (the transformer's own, at `rates[0]`) when
    they share one. The transformer divides the time axis by one `fps`; here each clip's row is divided by its own,
    the same arithmetic per clip."""
    if len(set(rates)) == 1:
        return None
    coords = transformer.rope.prepare_video_coords(len(rates), frames, height, width, device, fps=1.0)
    coords[:, 0] = coords[:, 0] / torch.tensor(rates, dtype=coords.dtype, device=device).view(-1, 1, 1)
    return coords
