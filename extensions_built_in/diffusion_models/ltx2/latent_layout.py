"""How LTX-2 latents are laid out: normalised with the VAEs' statistics, packed into tokens.

Video latents are (B, C, F, H, W); the transformer (patch size 1) sees (B, F*H*W, C).
Audio latents are (B, C, L, M); the transformer sees (B, L, C*M), and the audio VAE's
statistics are per packed feature (channels x latent mel bins).
"""

from __future__ import annotations

import torch


def normalize_video(latents: torch.Tensor, vae) -> torch.Tensor:
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
    return (latents - mean) * vae.config.scaling_factor / std


def denormalize_video(latents: torch.Tensor, vae) -> torch.Tensor:
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
    return latents * std / vae.config.scaling_factor + mean


def normalize_audio(latents: torch.Tensor, audio_vae) -> torch.Tensor:
    channels = latents.shape[1]
    packed = pack_audio(latents)
    packed = (packed - audio_vae.latents_mean.to(packed)) / audio_vae.latents_std.to(packed)
    return unpack_audio(packed, channels)


def denormalize_audio(latents: torch.Tensor, audio_vae) -> torch.Tensor:
    channels = latents.shape[1]
    packed = pack_audio(latents)
    packed = packed * audio_vae.latents_std.to(packed) + audio_vae.latents_mean.to(packed)
    return unpack_audio(packed, channels)


def pack_video(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F*H*W, C)."""
    return latents.flatten(2).transpose(1, 2)


def unpack_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, frames, height, width)


def pack_audio(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, L, M) -> (B, L, C*M)."""
    return latents.transpose(1, 2).flatten(2, 3)


def unpack_audio(tokens: torch.Tensor, channels: int) -> torch.Tensor:
    return tokens.unflatten(2, (channels, -1)).transpose(1, 2)
