"""Inspection computations: a training step's inputs and outputs in numbers a person can read.

Knows nothing of the trainer or of LTX-2: callers pass tensors (and a tokenizer) and get
plain values back (dicts, floats, lists), which `format_block` renders as a timestamped
tree for the console and `numeric_leaves` flattens into TensorBoard scalars. The same
dict goes to the trace, so the three places always agree.

    outputs = {"video": compare_stream(video_prediction, video_target), ...}
    print(format_block("Inspection: outputs", step, outputs))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import torch

from toolkit.trace import describe_tensor
from toolkit.trace.sinks.console import format_value

EDGE_VALUES = 10
FIRST_TOKEN_IDS = 20
SILENCE_DB = -120.0  # what the level of digital silence is reported as (log of zero has no value)


# -- outputs ---------------------------------------------------------------------


def edge_values(tensor: torch.Tensor, count: int = EDGE_VALUES) -> dict[str, list[float]]:
    """The first and last `count` values of the flattened tensor."""
    flat = tensor.detach().float().flatten().cpu()
    return {"first": flat[:count].tolist(), "last": flat[-count:].tolist()}


def mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean squared error over the elements where `mask` is 1 (all of them without a mask)."""
    squared = (prediction.detach().float() - target.detach().float()) ** 2
    if mask is None:
        return squared.mean().item()
    mask = mask.to(squared.dtype).expand_as(squared)
    return ((squared * mask).sum() / mask.sum().clamp(min=1)).item()


def cosine_similarity(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Cosine of the angle between the two tensors, each flattened to one vector."""
    return torch.nn.functional.cosine_similarity(
        prediction.detach().float().flatten(), target.detach().float().flatten(), dim=0
    ).item()


def compare_stream(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """Edge values of prediction and target, their MSE (over `mask`) and cosine similarity."""
    return {
        "prediction": edge_values(prediction),
        "target": edge_values(target),
        "mse": mse(prediction, target, mask),
        "cosine_similarity": cosine_similarity(prediction, target),
    }


def relative_change(changed: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """||changed - reference|| / ||reference|| over the elements where `mask` is 1: 0 means no change."""
    difference = changed.detach().float() - reference.detach().float()
    reference = reference.detach().float()
    if mask is not None:
        mask = mask.to(difference.dtype).expand_as(difference)
        difference, reference = difference * mask, reference * mask
    return (difference.norm() / reference.norm().clamp(min=1e-12)).item()


def predicted_clean(noisy: torch.Tensor, velocity: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Flow matching's clean estimate x0 = noisy - sigma * velocity; `sigmas` per sample (B,) or per element."""
    while sigmas.ndim < noisy.ndim:
        sigmas = sigmas.unsqueeze(-1)
    return noisy.float() - sigmas.float() * velocity.float()


# -- inputs ----------------------------------------------------------------------


def token_summary(tokenizer, text: str, max_length: int) -> dict[str, Any]:
    """What the tokenizer makes of `text` at `max_length`, special tokens shown: the count kept, whether it
    cut, the padding the model sees (`max_length` minus the kept tokens), the kept sequence decoded with its
    special tokens, which special tokens it holds, and its first token ids."""
    kept = tokenizer(text.strip(), truncation=True, max_length=max_length, add_special_tokens=True).input_ids
    whole = tokenizer(text.strip(), add_special_tokens=True, verbose=False).input_ids
    special_ids = set(tokenizer.all_special_ids)
    return {
        "tokens_kept": len(kept),
        "tokens_in_caption": len(whole),
        "max_length": max_length,
        "padding_tokens": max_length - len(kept),
        "truncated": len(whole) > len(kept),
        "decoded": tokenizer.decode(kept, skip_special_tokens=False),
        "special_tokens": tokenizer.convert_ids_to_tokens([i for i in kept if i in special_ids]),
        f"input_ids_first_{FIRST_TOKEN_IDS}": kept[:FIRST_TOKEN_IDS],
    }


def audio_level(waveform: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Length in seconds and level (RMS and peak, dBFS) of a (channels, samples) waveform in [-1, 1]."""
    samples = waveform.detach().float()
    rms = samples.pow(2).mean().sqrt().item() if samples.numel() else 0.0
    peak = samples.abs().max().item() if samples.numel() else 0.0
    return {
        "seconds": samples.shape[-1] / sample_rate,
        "sample_rate": sample_rate,
        "channels": samples.shape[0] if samples.ndim > 1 else 1,
        "rms_db": _decibels(rms),
        "peak_db": _decibels(peak),
    }


def _decibels(amplitude: float) -> float:
    return 20.0 * math.log10(amplitude) if amplitude > 0 else SILENCE_DB


def describe_tensors(**tensors: torch.Tensor) -> dict[str, dict]:
    """Shape, dtype, device and statistics of each tensor (the trace's one describing helper)."""
    return {name: describe_tensor(tensor) for name, tensor in tensors.items()}


# -- rendering -------------------------------------------------------------------


def format_block(title: str, step: int, data: Mapping[str, Any], timestamp: str | None = None) -> str:
    """A tree: a header with the step, a timestamp, then one branch per key (nested dicts indent).

    Tensor descriptions, lists and dicts of numbers are one line each, as the [VERBOSE] console
    shows them.
    """
    timestamp = timestamp or datetime.now().isoformat(sep=" ", timespec="seconds")
    lines = [f"=== {title} - step {step} ===", f"Timestamp: {timestamp}"]
    lines.extend(_tree_lines(data, prefix=""))
    return "\n".join(lines)


def _tree_lines(data: Mapping[str, Any], prefix: str) -> list[str]:
    lines = []
    items = list(data.items())
    for index, (key, value) in enumerate(items):
        last = index == len(items) - 1
        branch, extension = ("└── ", "    ") if last else ("├── ", "│   ")
        if isinstance(value, Mapping) and value and not _is_leaf_dict(value) and not _numbers_only(value):
            lines.append(f"{prefix}{branch}{key}")
            lines.extend(_tree_lines(value, prefix + extension))
        else:
            lines.append(f"{prefix}{branch}{key}: {_leaf_text(value)}")
    return lines


def _is_leaf_dict(value: Mapping) -> bool:
    return "shape" in value and "dtype" in value


def _numbers_only(value: Mapping) -> bool:
    """A dict of numbers (attention statistics of one module, say) reads best on one line."""
    return all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value.values())


def _leaf_text(value: Any) -> str:
    if isinstance(value, Mapping) and value and _numbers_only(value):
        return " ".join(f"{key}={format_value(item)}" for key, item in value.items())
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    if isinstance(value, list) and value and all(isinstance(item, float) for item in value):
        return "[" + ", ".join(f"{item:.4g}" for item in value) + "]"
    return format_value(value)


def flat_fields(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to {"outer.inner": leaf} (tensor descriptions stay whole): trace fields that
    the trace's describe() keeps as they are, however deep the block."""
    fields: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and not _is_leaf_dict(value):
            fields.update(flat_fields(value, path))
        else:
            fields[path] = value
    return fields


def numeric_leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every int/float leaf as {"path/to/leaf": value}: TensorBoard scalars (lists and text are left out)."""
    leaves: dict[str, float] = {}
    for key, value in data.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            leaves.update(numeric_leaves(value, path))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
            leaves[path] = float(value)
    return leaves
