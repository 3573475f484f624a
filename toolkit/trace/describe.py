"""One helper that turns any trace field into a small JSON-friendly value.

Tensors become their shape, dtype, device and statistics, modules their size and
placement, so call sites pass objects and never build strings. Only the enabled
tracer calls these: they read tensor values, which costs a device sync on GPU.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

MAX_ITEMS = 8
MAX_REPR_CHARS = 200
_PLAIN_TYPES = (str, int, float, bool, type(None))

LazyFields = Callable[[], Mapping[str, Any]]
"""A trace call's costly fields, as a callable the enabled tracer calls: ``lambda: {"tokens": tokenizer(text)}``."""


class Lines(tuple):
    """Text a sink shows line by line under its record, such as a table (the memory plan); trace.jsonl and
    trace.json store it as a list of strings. ``tracer.event("memory_plan_table", plan=Lines(text.splitlines()))``."""


def describe_fields(fields: Mapping[str, Any], lazy_fields: tuple[LazyFields, ...] = ()) -> dict[str, Any]:
    """``fields`` and what each of ``lazy_fields`` returns (called now, in order), each value described."""
    gathered = dict(fields)
    for lazy in lazy_fields:
        gathered.update(lazy())
    return {key: describe(value) for key, value in gathered.items()}


def describe(value: Any) -> Any:
    """Describe one trace field: tensors and modules as dicts, containers item by item.

    Plain values (str, int, float, bool, None) and containers holding only plain values
    are returned as they are. Containers holding tensors or other objects are described
    item by item, at most ``MAX_ITEMS`` items plus a count of the rest. Anything else
    becomes its ``repr``, cut to ``MAX_REPR_CHARS`` characters.
    """
    return _describe(value, depth=0)


def _describe(value: Any, depth: int) -> Any:
    if isinstance(value, Lines):
        return Lines(str(line) for line in value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, torch.Tensor):
        return describe_tensor(value)
    if isinstance(value, nn.Module):
        return describe_module(value)
    if isinstance(value, (torch.dtype, torch.device, PurePath)):
        return str(value)
    if isinstance(value, enum.Enum):
        return _describe(value.value, depth)
    if isinstance(value, np.ndarray):
        return _describe_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if depth < 2 and isinstance(value, (list, tuple)):
        return _describe_sequence(value, depth)
    if depth < 2 and isinstance(value, Mapping):
        return _describe_mapping(value, depth)
    return _short_repr(value)


def _describe_sequence(items: list | tuple, depth: int) -> list:
    if all(isinstance(item, _PLAIN_TYPES) for item in items):
        return list(items)
    described = [_describe(item, depth + 1) for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        described.append(f"... {len(items) - MAX_ITEMS} more ({len(items)} total)")
    return described


def _describe_mapping(mapping: Mapping, depth: int) -> dict:
    if all(isinstance(item, _PLAIN_TYPES) for item in mapping.values()):
        return {str(key): item for key, item in mapping.items()}
    described = {}
    for index, (key, item) in enumerate(mapping.items()):
        if index == MAX_ITEMS:
            described["..."] = f"{len(mapping) - MAX_ITEMS} more ({len(mapping)} total)"
            break
        described[str(key)] = _describe(item, depth + 1)
    return described


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as error:  # a broken __repr__ must not break the traced code; say so instead
        return f"<{type(value).__name__} whose repr failed: {type(error).__name__}: {error}>"[:MAX_REPR_CHARS]
    if len(text) > MAX_REPR_CHARS:
        return text[: MAX_REPR_CHARS - 3] + "..."
    return text


def describe_tensor(tensor: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, device and value statistics of a tensor, without its values.

    Floating tensors get min/max/mean over their non-NaN values and a NaN count;
    integer and bool tensors get min/max; empty, meta, sparse and complex tensors
    get shape/dtype/device only. A tensor subclass whose statistics cannot be
    computed gets ``stats_error`` with the reason instead. Tensor subclasses
    (quantized weights) also get ``tensor_type``, their class name.
    """
    description: dict[str, Any] = {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
        "device": str(tensor.device),
    }
    if type(tensor) not in (torch.Tensor, nn.Parameter):
        # e.g. optimum-quanto's WeightQBytesTensor: shows that a weight is quantized
        description["tensor_type"] = type(tensor).__name__
    if tensor.is_meta or tensor.numel() == 0 or tensor.layout != torch.strided or tensor.is_complex():
        return description
    try:
        with torch.no_grad():
            description.update(_tensor_stats(tensor.detach()))
    except (RuntimeError, TypeError, NotImplementedError) as error:
        description["stats_error"] = f"{type(error).__name__}: {str(error)[:MAX_REPR_CHARS]}"
    return description


def _tensor_stats(tensor: torch.Tensor) -> dict[str, Any]:
    if not tensor.is_floating_point():
        return {"min": tensor.min().item(), "max": tensor.max().item()}
    if tensor.element_size() == 1:
        # float8 tensors have no min/max/isnan kernels; an upcast copy is small at one byte per value.
        tensor = tensor.float()
    nan_mask = torch.isnan(tensor)
    nan_count = int(nan_mask.sum().item())
    values = tensor[~nan_mask] if nan_count else tensor
    if values.numel() == 0:
        return {"min": None, "max": None, "mean": None, "nan": nan_count}
    return {
        "min": values.min().item(),
        "max": values.max().item(),
        "mean": torch.mean(values, dtype=torch.float32).item(),
        "nan": nan_count,
    }


def _describe_array(array: np.ndarray) -> dict[str, Any] | str:
    if array.dtype.kind not in "biuf":
        return _short_repr(array)
    description = describe_tensor(torch.from_numpy(np.ascontiguousarray(array)))
    description["dtype"] = f"numpy.{array.dtype}"
    return description


def describe_module(module: nn.Module) -> dict[str, Any]:
    """Class name, parameter counts, dtype and device of a module and its children.

    A module whose parameters sit on several devices (layer offloading) or have
    several dtypes (quantized layers) reports them joined with ``+``, e.g.
    ``"cpu+cuda:0"``.
    """
    params = 0
    trainable = 0
    dtypes: dict[str, None] = {}
    devices: dict[str, None] = {}
    for parameter in module.parameters():
        count = parameter.numel()
        params += count
        if parameter.requires_grad:
            trainable += count
        dtypes[str(parameter.dtype)] = None
        devices[str(parameter.device)] = None
    return {
        "class": type(module).__name__,
        "params": params,
        "trainable": trainable,
        "dtype": "+".join(sorted(dtypes)) if dtypes else None,
        "device": "+".join(sorted(devices)) if devices else None,
    }
