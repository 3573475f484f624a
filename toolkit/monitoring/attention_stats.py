"""Attention statistics of the attention modules a caller names, read from the query and key the model computed.

    with AttentionProbe({"block_0.audio_to_video": block.audio_to_video_attn}) as probe:
        transformer(...)                      # one no-grad forward
    probe.results["block_0.audio_to_video"].entropy

Fused attention (SDPA, flash) never returns its weights. The probe installs a processor
wrapper (`set_processor`, diffusers' attention-module interface) on each named module; while
the module's own processor runs, the wrapper sees the query, key, mask and scale that the
processor hands to diffusers' `dispatch_attention_fn` (after its projections, norms and
rotary embeddings) and measures softmax(Q K^T * scale + mask) from them. Nothing of the
model's math is repeated here, and the module's output is the processor's own. Queries are
processed in chunks, so the full weight matrix of a long video is never held.

Which modules to probe, and what to call them, is the model's business: callers pass them in.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

QUERY_CHUNK = 1024
DISPATCH = "dispatch_attention_fn"


@dataclass(frozen=True)
class AttentionStats:
    """How one attention call spread its weight over the keys (the other stream's tokens).

    entropy: mean over batch, heads and queries, in nats; normalized_entropy divides it by
    log(keys): 1 is uniform attention, 0 is every query on one key. max_weight: the mean of
    each query's largest weight; peak_weight: the largest anywhere. share_on_top_key: the share
    of all attention that the most-attended key token receives; share_of_keys_above_uniform: the
    share of key tokens receiving more than an even share. output_to_query_norm:
    ||attention output|| / ||query-side input||, how strongly the other stream writes into
    this one (before the block's gate).
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


@dataclass(frozen=True, eq=False)
class AttentionCall:
    """What a processor handed to `dispatch_attention_fn`: query, key and value (batch, tokens, heads,
    head_dim), the mask (boolean keep-mask or additive, broadcastable to batch, heads, queries, keys) and
    the scale. Held only while the call is measured."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    scale: float | None

    def weights(self, queries: slice | None = None) -> torch.Tensor:
        """Attention weights (batch, heads, queries, keys) in float32; `queries` picks a range of query tokens."""
        query = self.query.transpose(1, 2).float()
        key = self.key.transpose(1, 2).float()
        if key.shape[1] != query.shape[1]:  # grouped key/value heads
            key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        if queries is not None:
            query = query[:, :, queries]
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(query.shape[-1])
        scores = (query @ key.transpose(-1, -2)) * scale
        if self.mask is not None:
            mask = self.mask
            if queries is not None and mask.ndim == 4 and mask.shape[2] > 1:
                mask = mask[:, :, queries]
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
        return scores.softmax(dim=-1)


def measure_attention(
    call: AttentionCall, hidden_states: torch.Tensor, output: torch.Tensor, query_chunk: int = QUERY_CHUNK
) -> AttentionStats:
    """The statistics of one call, a chunk of queries at a time; `hidden_states` is the module's query-side input."""
    batch, query_count = call.query.shape[0], call.query.shape[1]
    entropy_sum = max_sum = peak = 0.0
    received = None
    heads = keys = 0
    for start in range(0, query_count, query_chunk):
        weights = call.weights(slice(start, start + query_chunk))
        heads, keys = weights.shape[1], weights.shape[-1]
        entropy_sum += -(weights * weights.clamp(min=1e-12).log()).sum().item()
        largest = weights.max(dim=-1).values
        max_sum += largest.sum().item()
        peak = max(peak, largest.max().item())
        chunk_received = weights.sum(dim=(0, 1, 2))
        received = chunk_received if received is None else received + chunk_received
    rows = batch * heads * query_count
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


_seen = threading.local()  # .active: the call lists of the probing processors running on this thread


class ProbingProcessor:
    """Runs a module's processor unchanged and keeps the AttentionCall(s) it dispatched."""

    def __init__(self, processor, on_call):
        self.processor = processor
        self.on_call = on_call

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        calls: list[AttentionCall] = []
        with _seeing_dispatch(self.processor, calls):
            output = self.processor(attn, hidden_states, *args, **kwargs)
        if not calls:
            raise RuntimeError(
                f"attention probe: {type(self.processor).__name__} did not call diffusers' {DISPATCH}, so its "
                "query and key cannot be seen; probe modules whose processor dispatches through diffusers"
            )
        self.on_call(calls[-1], hidden_states, output)
        return output


@contextlib.contextmanager
def _seeing_dispatch(processor, calls: list[AttentionCall]) -> Iterator[None]:
    """While `processor` runs on this thread, record in `calls` what it hands to its module's dispatch function."""
    while isinstance(processor, ProbingProcessor):  # a probe over a probe: both see the innermost one's calls
        processor = processor.processor
    module = sys.modules[type(processor).__module__]
    dispatch = getattr(module, DISPATCH, None)
    if dispatch is None:
        raise RuntimeError(f"attention probe: {module.__name__} has no {DISPATCH}; its processor cannot be probed")
    installed = getattr(dispatch, "_probe_original", None) is None
    if installed:
        setattr(module, DISPATCH, _recording(dispatch))
    active = _seen.__dict__.setdefault("active", [])
    active.append(calls)
    try:
        yield
    finally:
        active.pop()  # nested probes run and finish in stack order
        if installed:
            setattr(module, DISPATCH, dispatch)


def _recording(dispatch):
    def recorded(query, key, value, attn_mask=None, *args, scale=None, **kwargs):
        for calls in getattr(_seen, "active", ()):
            calls.append(AttentionCall(query.detach(), key.detach(), value.detach(), _detach(attn_mask), scale))
        return dispatch(query, key, value, attn_mask, *args, scale=scale, **kwargs)

    recorded._probe_original = dispatch
    return recorded


def _detach(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else mask.detach()


class AttentionProbe:
    """Probing processors on the given attention modules for the duration of a `with` block.

    Each call of a probed module inside the block is measured (the last call wins);
    `results` maps the names given to their AttentionStats. The modules' own processors
    are put back on leaving the block, also when it raises.
    """

    def __init__(self, modules: Mapping[str, nn.Module], query_chunk: int = QUERY_CHUNK):
        self.modules = dict(modules)
        self.query_chunk = query_chunk
        self.results: dict[str, AttentionStats] = {}
        self._originals: dict[str, object] = {}

    def __enter__(self) -> "AttentionProbe":
        for name, module in self.modules.items():
            self._originals[name] = module.processor
            module.set_processor(ProbingProcessor(module.processor, self._measure(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name, processor in self._originals.items():
            self.modules[name].set_processor(processor)
        self._originals.clear()

    def _measure(self, name: str):
        def measure(call: AttentionCall, hidden_states: torch.Tensor, output: torch.Tensor) -> None:
            with torch.no_grad():
                self.results[name] = measure_attention(call, hidden_states, output, self.query_chunk)

        return measure
