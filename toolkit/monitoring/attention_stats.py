"""Attention statistics of cross-attention modules, read by forward hooks that exist only inside a `with`.

    with CrossAttentionProbe({"block_0.audio_to_video": block.audio_to_video_attn}) as probe:
        transformer(...)                      # one no-grad forward
    probe.results["block_0.audio_to_video"].entropy

Fused attention (SDPA) never returns its weights, so the hook recomputes them from the
module's own projections on the inputs it was called with: softmax(Q K^T / sqrt(d)) per
head, with the module's q/k norms, rotary embeddings and mask, as diffusers'
LTX2AudioVideoAttnProcessor computes them. The modules need `to_q`, `to_k`, `norm_q`,
`norm_k`, `heads`, `rope_type` and `prepare_attention_mask` (diffusers' LTX2Attention).
Queries are processed in chunks, so the full weight matrix of a long video is never held.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

QUERY_CHUNK = 1024


@dataclass(frozen=True)
class AttentionStats:
    """How one attention call spread its weight over the keys (the other modality's tokens).

    entropy: mean over batch, heads and queries, in nats; normalized_entropy divides it by
    log(keys): 1 is uniform attention, 0 is every query on one key. max_weight: the mean of
    each query's largest weight; peak_weight: the largest anywhere. share_on_top_key: the share
    of all attention that the most-attended key token receives; share_of_keys_above_uniform: the
    share of key tokens receiving more than an even share. output_to_query_norm:
    ||attention output|| / ||query-side input||, how strongly the other modality writes into
    this stream (before the block's gate).
    """

    heads: int
    queries: int
    keys: int
    entropy: float
    normalized_entropy: float
    max_weight: float
    peak_weight: float
    share_on_top_key: float
    share_of_keys_above_uniform: float
    output_to_query_norm: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def attention_weights(
    attention: nn.Module,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    query_rotary_emb=None,
    key_rotary_emb=None,
    queries: slice | None = None,
) -> torch.Tensor:
    """Attention weights (B, heads, queries, keys) of one call, in float32; `queries` picks a range of query tokens."""
    keys_from = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    query = attention.norm_q(attention.to_q(hidden_states))
    key = attention.norm_k(attention.to_k(keys_from))
    if query_rotary_emb is not None:
        query, key = _rotate(attention, query, key, query_rotary_emb, key_rotary_emb)
    batch, key_count = key.shape[0], key.shape[1]
    query = query.unflatten(2, (attention.heads, -1)).transpose(1, 2).float()
    key = key.unflatten(2, (-1, query.shape[-1])).transpose(1, 2).float()
    if key.shape[1] != query.shape[1]:  # grouped key/value heads
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    if queries is not None:
        query = query[:, :, queries]
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    if attention_mask is not None:
        mask = attention.prepare_attention_mask(attention_mask, key_count, batch)
        mask = mask.view(batch, attention.heads, -1, mask.shape[-1])
        if queries is not None and mask.shape[2] > 1:
            mask = mask[:, :, queries]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    return scores.softmax(dim=-1)


def _rotate(attention: nn.Module, query, key, query_rotary_emb, key_rotary_emb):
    from diffusers.models.transformers.transformer_ltx2 import apply_interleaved_rotary_emb, apply_split_rotary_emb

    key_rotary_emb = key_rotary_emb if key_rotary_emb is not None else query_rotary_emb
    rotate = apply_interleaved_rotary_emb if attention.rope_type == "interleaved" else apply_split_rotary_emb
    return rotate(query, query_rotary_emb), rotate(key, key_rotary_emb)


def measure_attention(
    attention: nn.Module, call: Mapping[str, object], output: torch.Tensor, query_chunk: int = QUERY_CHUNK
) -> AttentionStats:
    """The statistics of one call (`call`: the module's forward arguments by name), a chunk of queries at a time."""
    hidden_states = call["hidden_states"]
    query_count = hidden_states.shape[1]
    entropy_sum = max_sum = 0.0
    peak = 0.0
    received = None
    heads = keys = 0
    for start in range(0, query_count, query_chunk):
        weights = attention_weights(
            attention,
            hidden_states,
            call.get("encoder_hidden_states"),
            call.get("attention_mask"),
            call.get("query_rotary_emb"),
            call.get("key_rotary_emb"),
            queries=slice(start, start + query_chunk),
        )
        heads, keys = weights.shape[1], weights.shape[-1]
        entropy_sum += -(weights * weights.clamp(min=1e-12).log()).sum().item()
        largest = weights.max(dim=-1).values
        max_sum += largest.sum().item()
        peak = max(peak, largest.max().item())
        chunk_received = weights.sum(dim=(0, 1, 2))
        received = chunk_received if received is None else received + chunk_received
    rows = hidden_states.shape[0] * heads * query_count
    entropy = entropy_sum / rows
    return AttentionStats(
        heads=heads,
        queries=query_count,
        keys=keys,
        entropy=entropy,
        normalized_entropy=entropy / math.log(keys) if keys > 1 else 0.0,
        max_weight=max_sum / rows,
        peak_weight=peak,
        share_on_top_key=(received.max() / received.sum()).item(),
        share_of_keys_above_uniform=(received > received.sum() / keys).float().mean().item(),
        output_to_query_norm=(output.float().norm() / hidden_states.float().norm().clamp(min=1e-12)).item(),
    )


class CrossAttentionProbe:
    """Forward hooks on the given attention modules for the duration of a `with` block.

    Each call of a probed module inside the block is measured (the last call wins);
    `results` maps the names given to their AttentionStats. The hooks are removed on
    leaving the block, also when it raises.
    """

    def __init__(self, modules: Mapping[str, nn.Module], query_chunk: int = QUERY_CHUNK):
        self.modules = dict(modules)
        self.query_chunk = query_chunk
        self.results: dict[str, AttentionStats] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> "CrossAttentionProbe":
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def measure(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            call = inspect.signature(module.forward).bind(*args, **kwargs).arguments
            with torch.no_grad():
                self.results[name] = measure_attention(module, call, output, self.query_chunk)

        return measure
