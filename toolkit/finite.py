"""Finding NaN and infinite values in the tensors about to be written (a LoRA, an optimizer state)."""

from __future__ import annotations

from typing import Any

import torch


def nonfinite_tensor_names(tree: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in `tree` (nested dicts, lists, tuples) holding NaN or inf."""
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and not bool(torch.isfinite(tree).all()):
            return [prefix or "tensor"]
        return []
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    names: list[str] = []
    for key, value in items:
        names.extend(nonfinite_tensor_names(value, f"{prefix}.{key}" if prefix else str(key)))
    return names


def describe_names(names: list[str], limit: int = 3) -> str:
    """'a, b, c and 4 more' for an error message."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
