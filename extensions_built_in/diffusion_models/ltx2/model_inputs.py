"""What LTX-2 receives and returns, video and audio travelling together.

Latents are kept unpacked ((B, C, F, H, W) for video, (B, C, L, M) for audio)
and normalised with the VAEs' statistics; packing into token sequences
happens only at the transformer's door (`LTX2Model.get_noise_prediction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


def _map_tensors(obj, fn):
    changes = {f.name: fn(getattr(obj, f.name)) for f in fields(obj) if isinstance(getattr(obj, f.name), torch.Tensor)}
    return replace(obj, **changes)


@dataclass
class VideoLatents:
    """Video latents and the facts of their encoding."""

    latents: torch.Tensor  # (B, C, F, H, W), normalised
    pixel_shape: tuple[int, ...]  # (B, 3, T, H, W) of the frames that were encoded
    spatial_compression: int
    temporal_compression: int
    strategy: str = "direct"

    def to(self, device=None, dtype=None) -> "VideoLatents":
        return _map_tensors(self, lambda t: t.to(device=device, dtype=dtype))


@dataclass
class AudioLatents:
    """Audio latents, the log-mel they came from, and whether the audio was silence."""

    latents: torch.Tensor  # (B, C, L, M), normalised
    mel_shape: tuple[int, ...]  # (B, 2, T, mel_bins)
    waveform_shape: tuple[int, ...]  # (B, channels, samples) after resampling
    sample_rate: int
    is_silence: list[bool] = field(default_factory=list)

    def to(self, device=None, dtype=None) -> "AudioLatents":
        return _map_tensors(self, lambda t: t.to(device=device, dtype=dtype))


@dataclass
class PromptEmbeds:
    """A batch of encoded prompts.

    `video_embeds`, `audio_embeds` and `attention_mask` are the text
    connectors' outputs that the transformer attends to. `text_states` and
    `text_mask` are Gemma's stacked hidden states, kept only when asked
    (sampling through the pipeline needs them; training does not, and for
    the published model they are ~190k wide per token).
    """

    video_embeds: torch.Tensor  # (B, S, D_video)
    audio_embeds: torch.Tensor  # (B, S, D_audio)
    attention_mask: torch.Tensor  # (B, S)
    text_states: torch.Tensor | None = None  # (B, S, hidden * (layers + 1))
    text_mask: torch.Tensor | None = None  # (B, S)

    def to(self, device=None, dtype=None) -> "PromptEmbeds":
        def move(t: torch.Tensor) -> torch.Tensor:
            # Masks keep their integer dtype.
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return _map_tensors(self, move)

    @property
    def batch_size(self) -> int:
        return self.video_embeds.shape[0]

    @classmethod
    def cat(cls, items: list["PromptEmbeds"]) -> "PromptEmbeds":
        def join(name: str):
            values = [getattr(item, name) for item in items]
            return None if any(v is None for v in values) else torch.cat(values, dim=0)

        return cls(**{f.name: join(f.name) for f in fields(cls)})

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to store in a cache file (text states left out)."""
        return {"video_embeds": self.video_embeds, "audio_embeds": self.audio_embeds, "attention_mask": self.attention_mask}


@dataclass
class NoisePrediction:
    """The transformer's velocity prediction for each stream."""

    video: torch.Tensor  # (B, C, F, H, W)
    audio: torch.Tensor  # (B, C, L, M)
