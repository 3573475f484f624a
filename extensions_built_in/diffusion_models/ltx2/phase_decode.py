"""LTX2Model's decoders for what `--inspect` shows: normalised latents back to frames (video VAE) and to a
waveform (audio VAE, then the vocoder) (an object LTX2Model owns)."""

from __future__ import annotations

import torch

from . import latent_layout
from .placement import Placement


class DecodePhase:
    """decode_video and decode_audio on the model's VAEs and vocoder (read from `components` at call time)."""

    def __init__(self, components: dict, placement: Placement, device: torch.device):
        self.components = components
        self.placement = placement
        self.device = device

    @torch.no_grad()
    def decode_video(self, video_latents: torch.Tensor) -> torch.Tensor:
        """Normalised video latents (B, C, F, H, W) to frames (B, 3, T, H*s, W*s) in [-1, 1] (float32)."""
        vae = self.components["vae"]
        with self.placement.on_device("vae"):
            latents = latent_layout.denormalize_video(video_latents.to(self.device), vae)
            temb = torch.zeros(1, device=self.device, dtype=vae.dtype) if vae.config.timestep_conditioning else None
            frames = vae.decode(latents.to(vae.dtype), temb, return_dict=False)[0]
        return frames.float().clamp(-1, 1)

    @torch.no_grad()
    def decode_audio(self, audio_latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Normalised audio latents (B, C, L, M) to a waveform (B, channels, samples) in [-1, 1] at the vocoder's rate."""
        audio_vae, vocoder = self.components["audio_vae"], self.components["vocoder"]
        with self.placement.on_device("audio_vae", "vocoder"):
            latents = latent_layout.denormalize_audio(audio_latents.to(self.device), audio_vae)
            mel_spectrogram = audio_vae.decode(latents.to(audio_vae.dtype), return_dict=False)[0]
            waveform = vocoder(mel_spectrogram.to(next(vocoder.parameters()).dtype))
        return waveform.float().clamp(-1, 1), int(vocoder.config.output_sampling_rate)
