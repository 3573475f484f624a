"""What a model receives and returns through the model interface, in names every arch shares.

The trainer caches, joins, moves and compares these without knowing a model's insides: a prompt
is named tensors per conditioned stream plus a padding mask; latents are kept unpacked ((B, C, F, H, W)
for video, (B, C, L, M) for audio) and normalised as the model's denoiser expects them; packing into
token sequences is the model's own business, inside `get_noise_prediction`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import torch

_EMBEDS_SUFFIX = "_embeds"
_MASK = "attention_mask"


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

    def to(self, device=None, dtype=None) -> VideoLatents:
        return _map_tensors(self, lambda t: t.to(device=device, dtype=dtype))


@dataclass
class AudioLatents:
    """Audio latents, the features they came from, and whether the audio was silence."""

    latents: torch.Tensor  # (B, C, L, M), normalised
    mel_shape: tuple[int, ...]  # the shape of the features the audio encoder read (LTX-2: (B, 2, T, mel_bins))
    waveform_shape: tuple[int, ...]  # (B, channels, samples) after resampling
    sample_rate: int
    is_silence: list[bool] = field(default_factory=list)

    def to(self, device=None, dtype=None) -> AudioLatents:
        return _map_tensors(self, lambda t: t.to(device=device, dtype=dtype))


def _move(tensor: torch.Tensor, device, dtype) -> torch.Tensor:
    # Masks and token ids keep their integer dtype.
    return tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)


@dataclass
class PromptEmbeds:
    """A batch of encoded prompts, batch first.

    `embeds`: what the denoiser attends to, one (B, S, D) tensor per stream it conditions (LTX-2:
    "video" and "audio"), read as `prompt["video"]`; `attention_mask`: (B, S), 1 for the tokens
    attended; `for_sampling`: what only the model's sampling pipeline reads besides (LTX-2: the text
    encoder's stacked hidden states, ~190k wide per token for the published model), kept only when
    asked (`get_prompt_embeds(..., keep_text_states=True)`) and never cached.
    """

    embeds: dict[str, torch.Tensor]
    attention_mask: torch.Tensor
    for_sampling: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, stream: str) -> torch.Tensor:
        return self.embeds[stream]

    @property
    def batch_size(self) -> int:
        return self.attention_mask.shape[0]

    def to(self, device=None, dtype=None) -> PromptEmbeds:
        return PromptEmbeds(
            {name: _move(t, device, dtype) for name, t in self.embeds.items()},
            _move(self.attention_mask, device, dtype),
            {name: _move(t, device, dtype) for name, t in self.for_sampling.items()},
        )

    @classmethod
    def cat(cls, items: list[PromptEmbeds]) -> PromptEmbeds:
        """One batch of `items` in order; a `for_sampling` tensor is kept when every item has it."""
        shared = [name for name in items[0].for_sampling if all(name in item.for_sampling for item in items)]
        return cls(
            {name: torch.cat([item.embeds[name] for item in items]) for name in items[0].embeds},
            torch.cat([item.attention_mask for item in items]),
            {name: torch.cat([item.for_sampling[name] for item in items]) for name in shared},
        )

    def repeat(self, count: int) -> PromptEmbeds:
        """`count` copies of this batch, one after another (one prompt for many noise levels or clips)."""
        return PromptEmbeds.cat([self] * count)

    def rows_equal(self, other: PromptEmbeds) -> list[bool]:
        """For each row of this batch: whether it is the same prompt as `other`'s first row (every stream)."""
        return [
            all(torch.equal(self.embeds[name][row : row + 1].cpu(), other.embeds[name][:1].cpu()) for name in self.embeds)
            for row in range(self.batch_size)
        ]

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a cache file stores (`<stream>_embeds` and `attention_mask`; `for_sampling` left out)."""
        return {**{f"{name}{_EMBEDS_SUFFIX}": t for name, t in self.embeds.items()}, _MASK: self.attention_mask}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> PromptEmbeds:
        """The inverse of `as_tensors` (a cache file read back)."""
        embeds = {name.removesuffix(_EMBEDS_SUFFIX): t for name, t in tensors.items() if name.endswith(_EMBEDS_SUFFIX)}
        return cls(embeds, tensors[_MASK])


@dataclass
class NoisePrediction:
    """The denoiser's velocity prediction for each stream."""

    video: torch.Tensor  # (B, C, F, H, W)
    audio: torch.Tensor  # (B, C, L, M)
