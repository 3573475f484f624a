"""LTX2Model's get_noise_prediction: the transformer's velocity for noisy latents (mixed into LTX2Model)."""

from __future__ import annotations

import torch

from . import latent_layout
from .model_inputs import NoisePrediction, PromptEmbeds
from .timestep_conditioning import TimestepConditioning


class PredictPhase:
    """get_noise_prediction; it uses LTX2Model's transformer, dtype and tracer."""

    # -- get_noise_prediction ----------------------------------------------
    def get_noise_prediction(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        sigmas: torch.Tensor,
        prompt: PromptEmbeds,
        fps: float,
        video_sigmas: torch.Tensor | None = None,
    ) -> NoisePrediction:
        """The transformer's velocity for noisy video (B, C, F, H, W) and audio (B, C, L, M) latents.

        `sigmas` (B,) is the noise level in [0, 1]; `video_sigmas` (B, tokens) overrides it per video
        token (image-to-video keeps the first frame's tokens at 0). The transformer is called exactly
        as LTX2Pipeline / LTX2ImageToVideoPipeline call it (see `timestep_conditioning`), so a LoRA
        trains on the forward it is sampled with.
        """
        transformer = self.transformer
        batch, _, frames, height, width = video_latents.shape
        audio_length = audio_latents.shape[2]
        conditioning = TimestepConditioning.for_noise_levels(sigmas, video_sigmas)
        with self.tracer.span(
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
                self.tracer.event(
                    "i2v_conditioning",
                    lambda: {"tokens_fixed_per_clip": (video_sigmas == 0).sum(dim=1)},
                    applied=True,
                    tokens_per_clip=video_tokens.shape[1],
                    tokens_per_frame=height * width,
                )
            video_pred, audio_pred = transformer(
                hidden_states=video_tokens,
                audio_hidden_states=audio_tokens,
                encoder_hidden_states=prompt.video_embeds.to(self.dtype),
                audio_encoder_hidden_states=prompt.audio_embeds.to(self.dtype),
                **conditioning.transformer_kwargs(),
                encoder_attention_mask=prompt.attention_mask,
                audio_encoder_attention_mask=prompt.attention_mask,
                num_frames=frames,
                height=height,
                width=width,
                fps=fps,
                audio_num_frames=audio_length,
                return_dict=False,
            )
            prediction = NoisePrediction(
                video=latent_layout.unpack_video(video_pred.float(), frames, height, width),
                audio=latent_layout.unpack_audio(audio_pred.float(), audio_latents.shape[1]),
            )
            span.set(video_prediction=prediction.video, audio_prediction=prediction.audio)
        return prediction
