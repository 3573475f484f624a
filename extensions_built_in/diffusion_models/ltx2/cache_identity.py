"""What the latent and text-embedding caches key on, so a cached tensor is reused only when it would be equal.

Latents: the latent space (LTX-2.0 or LTX-2.3+: a 2.0 latent is never reused
for 2.3, whatever its encoder), a hash of the video VAE encoder's weights and
latent statistics, the encoder's settings (the decoder's are left out: 2.3's
fourth decoder block does not change a latent), and the same for the audio
VAE. A 2.5 checkpoint whose VAE encoders hold the 2.3 weights therefore reuses
2.3 latents, from any folder; one whose encoder differs by a single weight
does not. Hashing reads every encoder weight once per loaded model (a few
seconds for the published VAE); the result is kept on the model.

Text embeddings: the checkpoint, its LTX-2 version and the connectors'
config. The connectors change between versions (2.3 projects per modality),
so embeddings are never shared across versions.
"""

from __future__ import annotations

import hashlib
import json

import torch

DECODER_ONLY_SETTINGS = ("decoder_", "upsample_", "timestep_conditioning")


def latent_space(version: str) -> str:
    return "ltx-2.0" if version == "2.0" else "ltx-2.3+"


def module_digest(tensors: list[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and bytes of `tensors`, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def encoder_digest(vae) -> str:
    """The hash of what a VAE's encode depends on: its encoder's weights and the latent statistics."""
    tensors = [(f"encoder.{name}", tensor) for name, tensor in vae.encoder.state_dict().items()]
    for stat in ("latents_mean", "latents_std"):
        value = getattr(vae, stat, None)
        if isinstance(value, torch.Tensor):
            tensors.append((stat, value))
    return module_digest(tensors)


def encoder_settings(vae) -> dict:
    """The config values an encode depends on (not where it was loaded from, not the decoder's)."""
    return {
        key: value
        for key, value in dict(vae.config).items()
        if not key.startswith("_") and not key.startswith(DECODER_ONLY_SETTINGS)
    }


def latent_identity(version: str, vae, audio_vae) -> str:
    identity = {
        "latent_space": latent_space(version),
        "video_encoder": encoder_digest(vae),
        "video_settings": encoder_settings(vae),
        "audio_encoder": encoder_digest(audio_vae),
        "audio_settings": encoder_settings(audio_vae),
    }
    return json.dumps(identity, sort_keys=True, default=str)


def text_identity(location: str, version: str, connectors, te_dtype) -> str:
    identity = {
        "checkpoint": location,
        "ltx2_version": version,
        "connectors": dict(connectors.config),
        "te_dtype": str(te_dtype),
    }
    return json.dumps(identity, sort_keys=True, default=str)
