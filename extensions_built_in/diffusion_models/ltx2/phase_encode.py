"""LTX2Model's encode phases: frames to video latents, waveforms to audio latents (an object LTX2Model owns)."""

from __future__ import annotations

import torch

from toolkit.data.audio import resample_audio
from toolkit.errors import DataError
from toolkit.models.model_inputs import AudioLatents, VideoLatents
from toolkit.trace import get_tracer

from . import audio_features, latent_layout
from .placement import Placement


class EncodePhase:
    """encode_images and encode_audio on the model's video and audio VAEs (read from `components` at call time)."""

    def __init__(self, components: dict, placement: Placement, device: torch.device, vae_tiling: bool):
        self.components = components
        self.placement = placement
        self.device = device
        self.vae_tiling = vae_tiling

    # -- encode_images -----------------------------------------------------
    @torch.no_grad()
    def encode_images(self, video: torch.Tensor, clip: str | None = None) -> VideoLatents:
        """Frames (B, 3, T, H, W) in [-1, 1] to normalised video latents (B, C, F, H/s, W/s).

        The encode goes through the latent monitor's chain: direct on the device (left out with
        `vae_tiling`), tiled, then on the CPU, each only when the one before ran out of memory.
        `clip` names the frames in its report and errors.
        """
        from toolkit.monitoring.latents import encode_with_fallback
        from toolkit.monitoring.vae_strategies import vae_strategies

        vae = self.components["vae"]
        if video.ndim != 5 or video.shape[1] != 3:
            raise DataError(f"encode_images expects frames shaped (batch, 3, frames, height, width), got {tuple(video.shape)}")
        frames = video.shape[2]
        if (frames - 1) % vae.temporal_compression_ratio != 0:
            raise DataError(
                f"encode_images: {frames} frames; LTX-2 needs {vae.temporal_compression_ratio}k+1 frames "
                f"(e.g. {frames - (frames - 1) % vae.temporal_compression_ratio})"
            )
        with self.placement.on_device("vae"), get_tracer().span("encode_images", frames=video, clip=clip) as span:
            strategies = vae_strategies(vae, self.device, start_tiled=self.vae_tiling)
            latents, report = encode_with_fallback(clip or f"frames {tuple(video.shape)}", video, strategies)
            latents = latent_layout.normalize_video(latents.to(self.device), vae)
            result = VideoLatents(
                latents=latents,
                pixel_shape=tuple(video.shape),
                spatial_compression=vae.spatial_compression_ratio,
                temporal_compression=vae.temporal_compression_ratio,
                strategy=report.strategy,
            )
            span.set(
                strategy=report.strategy,
                failed_strategies=[name for name, _ in report.failures],
                latents=latents,
                spatial_compression=report.spatial_compression,
                temporal_compression=report.temporal_compression,
                elements_per_latent=video[0].numel() / latents[0].numel(),
                seconds=report.seconds,
            )
        return result

    # -- encode_audio ------------------------------------------------------
    @torch.no_grad()
    def encode_audio(
        self, waveform: torch.Tensor, sample_rate: int, is_silence: list[bool] | None = None
    ) -> AudioLatents:
        """Waveform (B, channels, samples) to normalised audio latents (B, C, L, M) via log-mel and the audio VAE."""
        audio_vae = self.components["audio_vae"]
        vae_rate = audio_vae.config.sample_rate
        with self.placement.on_device("audio_vae"), get_tracer().span(
            "encode_audio", waveform=waveform, sample_rate=sample_rate, is_silence=is_silence
        ) as span:
            resampled = resample_audio(waveform.float(), sample_rate, vae_rate)
            mel = audio_features.log_mel(
                audio_features.stereo(resampled).to(self.device),
                vae_rate,
                audio_vae.config.mel_bins,
                audio_vae.config.mel_hop_length,
            )
            latents = audio_vae.encode(mel.to(audio_vae.dtype)).latent_dist.mode()
            latents = latent_layout.normalize_audio(latents, audio_vae)
            span.set(resampled_rate=vae_rate, mel=mel, latents=latents)
        return AudioLatents(
            latents=latents,
            mel_shape=tuple(mel.shape),
            waveform_shape=tuple(resampled.shape),
            sample_rate=vae_rate,
            is_silence=list(is_silence or [False] * waveform.shape[0]),
        )
