"""The toy arch's two weight-holding components: a byte-level text encoder and a two-block transformer.

Both are diffusers `ModelMixin`s (save_pretrained / from_pretrained, gradient checkpointing; the transformer
also a `PeftAdapterMixin`, which the toolkit attaches the LoRA through) built from
plain torch layers and diffusers' Wan attention (whose processor dispatches through diffusers, so the
inspection's attention probe sees it). Nothing here is LTX-2's.
"""

from __future__ import annotations

import math

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.loaders import PeftAdapterMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor
from torch import nn

TIME_FEATURES = 16


class ToyTextEncoder(ModelMixin, ConfigMixin):
    """Token ids (bytes + 1; 0 pads) to embeddings."""

    @register_to_config
    def __init__(self, width: int = 16, vocabulary: int = 257):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width, padding_idx=0)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed(input_ids)


def timestep_features(sigmas: torch.Tensor, scale: float) -> torch.Tensor:
    """Sinusoidal features (..., TIME_FEATURES) of the noise level at the timestep scale."""
    half = TIME_FEATURES // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=sigmas.device) / half)
    angles = (sigmas.float() * scale)[..., None] * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ToyBlock(nn.Module):
    """Self-attention over the joint video + audio tokens, cross-attention to the prompt, a feed-forward."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn1 = WanAttention(dim, heads, dim // heads, processor=WanAttnProcessor())
        self.attn2 = WanAttention(dim, heads, dim // heads, cross_attention_dim_head=dim // heads, processor=WanAttnProcessor())
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attn1(self.norm1(tokens))
        tokens = tokens + self.attn2(self.norm2(tokens), encoder_hidden_states=text, attention_mask=text_mask)
        return tokens + self.ff(self.norm3(tokens))


class ToyTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Velocity of video tokens (B, Nv, video_channels) and audio tokens (B, Na, audio_features), each token
    told its own noise level, conditioned on the prompt."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self, video_channels: int = 3, audio_features: int = 4, text_width: int = 16, dim: int = 32, heads: int = 2,
        num_blocks: int = 2, timestep_scale: float = 1000.0,
    ):
        super().__init__()
        self.video_in, self.audio_in = nn.Linear(video_channels, dim), nn.Linear(audio_features, dim)
        self.text_in, self.time_in = nn.Linear(text_width, dim), nn.Linear(TIME_FEATURES, dim)
        self.blocks = nn.ModuleList(ToyBlock(dim, heads) for _ in range(num_blocks))
        self.norm_out = nn.LayerNorm(dim)
        self.video_out, self.audio_out = nn.Linear(dim, video_channels), nn.Linear(dim, audio_features)
        self.gradient_checkpointing = False

    def forward(self, video_tokens, audio_tokens, video_sigmas, audio_sigmas, text, text_mask):
        scale = self.config.timestep_scale
        video = self.video_in(video_tokens) + self.time_in(timestep_features(video_sigmas, scale))
        audio = self.audio_in(audio_tokens) + self.time_in(timestep_features(audio_sigmas, scale))
        tokens, text = torch.cat([video, audio], dim=1), self.text_in(text)
        keep = text_mask.bool()[:, None, None, :]  # (B, 1, 1, S): the prompt's tokens, not its padding
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(block, tokens, text, keep)
            else:
                tokens = block(tokens, text, keep)
        tokens = self.norm_out(tokens)
        return self.video_out(tokens[:, : video.shape[1]]), self.audio_out(tokens[:, video.shape[1] :])
