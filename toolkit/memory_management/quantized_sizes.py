"""Which layers optimum-quanto quantizes and how many bytes they take after: no weights needed.

Used by quantization (toolkit/quantize.py) on real layers and by the memory plan on meta ones, so the
plan predicts exactly what quantization does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toolkit.memory_management.errors import QuantizationError
from toolkit.memory_management.module_names import matching_pattern

MIN_IN_FEATURES = 16
"""Linear layers with fewer inputs stay at full precision: quanto keeps one scale per output row
(two for 4-bit), so below 16 inputs the scales eat most of the saving and the error per row grows."""

QUANTO_GROUP_SIZE = 128
"""quanto's 4-bit / 2-bit group size (QModuleMixin), reproduced by `quantized_weight_bytes`."""

UNSUPPORTED_QTYPES = {"uint4": "qint4"}


def resolve_qtype(name: str):
    """The optimum-quanto qtype for a config name (qfloat8, qint8, qint4, ...)."""
    from optimum.quanto import qtypes

    if name in qtypes:
        return qtypes[name]
    supported = ", ".join(sorted(qtypes))
    if name in UNSUPPORTED_QTYPES:
        raise QuantizationError(
            f"qtype {name!r}: the installed optimum-quanto has no unsigned 4-bit weight type; "
            f"it supports {supported}. Set model.qtype (or model.qtype_te) to "
            f"{UNSUPPORTED_QTYPES[name]!r}, which stores weights in 4 bits too."
        )
    raise QuantizationError(f"qtype {name!r} is unknown to optimum-quanto; use one of {supported}.")


def skip_reason(
    name: str,
    module: nn.Module,
    qtype_name: str,
    exclude: Sequence[str],
    min_in_features: int = MIN_IN_FEATURES,
    dtype: torch.dtype | None = None,
) -> tuple[str, str] | None:
    """Why a module with weights is not quantized, as (kind, detail), or None when it is quantized.

    Works on meta modules too: the memory plan uses it to predict quantized sizes, passing the
    `dtype` the weights will have when they are quantized (default: the weight's own dtype).
    """
    from optimum.quanto import QModuleMixin

    pattern = matching_pattern(name, exclude)
    if pattern is not None:
        return "excluded", f"pattern {pattern!r}"
    if isinstance(module, QModuleMixin):
        return "already_quantized", type(module).__name__
    if type(module) is not nn.Linear:
        return "not_linear", type(module).__name__
    if module.in_features < min_in_features:
        return "too_small", f"in_features {module.in_features} < {min_in_features}"
    weight_dtype = module.weight.dtype if dtype is None else dtype
    if _needs_tinygemm(qtype_name, module.in_features, weight_dtype) and module.out_features % 16:
        return "unsupported_shape", f"qint4 bf16 packing needs out_features divisible by 16, got {module.out_features}"
    return None


def _needs_tinygemm(qtype_name: str, in_features: int, dtype: torch.dtype) -> bool:
    # quanto 0.2.7 stores qint4 bf16 weights grouped by 128 in torch's tinygemm int4 layout,
    # whose packing kernel rejects an output size that is not a multiple of 16.
    return qtype_name == "qint4" and dtype == torch.bfloat16 and _quanto_group_size(in_features) == QUANTO_GROUP_SIZE


def quantized_weight_bytes(out_features: int, in_features: int, qtype_name: str, dtype: torch.dtype) -> int:
    """Bytes of a Linear weight after quanto quantization: data at qtype bits plus scales (and shifts).

    Scales (and 4/2-bit shifts) are in the layer's dtype: one per output row for 8 bit, one per
    group of up to 128 inputs for 4 and 2 bit (quanto's grouping).
    """
    qtype = resolve_qtype(qtype_name)
    dtype_bytes = torch.empty((), dtype=dtype, device="meta").element_size()
    data_bytes = -(-out_features * in_features * qtype.bits // 8)
    if qtype.bits == 8:
        return data_bytes + out_features * dtype_bytes
    group_size = _quanto_group_size(in_features)
    groups_per_row = in_features // group_size if group_size else 1
    return data_bytes + 2 * out_features * groups_per_row * dtype_bytes


def quantized_linear_buffer_bytes(dtype: torch.dtype) -> int:
    """Bytes of the two scalar buffers (input_scale, output_scale) quanto adds to each quantized layer."""
    return 2 * torch.empty((), dtype=dtype, device="meta").element_size()


def _quanto_group_size(in_features: int) -> int | None:
    # Mirrors optimum.quanto.nn.qmodule.QModuleMixin.__init__ (0.2.7).
    group_size = QUANTO_GROUP_SIZE
    if in_features <= group_size:
        return None
    while in_features % group_size != 0 and group_size > 32:
        group_size -= 32
    return group_size if in_features % group_size == 0 else None
