"""Weight quantization of a model's Linear layers with optimum-quanto.

    report = quantize_module(transformer, "qfloat8", exclude=["proj_in", "*norm*"], component="transformer")
    report.quantized, report.skipped, report.bytes_before, report.bytes_after

Each chosen ``nn.Linear`` becomes a frozen quanto ``QLinear`` right away, one
layer at a time, so the model never holds a full-precision and a quantized copy
of more than one layer. Layers that decide the model's conditioning (timestep
and caption embeddings, the patch projections, the AdaLN modulation) stay in
full precision: they are small and their errors reach every block. Which
layers those are is the model's answer (`exclude`: e.g. for LTX-2, from
`LTX2Model.quantization_excludes()`). peft LoRA
adapters attach on top of the quantized layers and train in full precision.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from toolkit.memory_management.adapters import adapter_module_ids
from toolkit.memory_management.errors import QuantizationError
from toolkit.memory_management.quantized_sizes import (
    MIN_IN_FEATURES,
    quantized_linear_buffer_bytes,
    quantized_weight_bytes,
    resolve_qtype,
    skip_reason,
)
from toolkit.memory_management.streamed_loading import release_freed_host_memory
from toolkit.memory_management.tensors import module_bytes, tensor_bytes
from toolkit.trace import get_tracer


@dataclass(frozen=True)
class SkippedModule:
    """A module with weights that stayed at full precision, and why.

    kind: "excluded" (a pattern matched), "not_linear", "too_small", "unsupported_shape" or
    "already_quantized";
    detail: the pattern, the class name or the sizes.
    """

    name: str
    kind: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class QuantizationReport:
    """What `quantize_module` did to one component."""

    component: str
    qtype: str
    quantized: list[str] = field(default_factory=list)
    skipped: list[SkippedModule] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    quantized_weight_bytes_before: int = 0
    quantized_weight_bytes_after: int = 0
    seconds: float = 0.0

    @property
    def weight_compression(self) -> float:
        """How many times smaller the quantized layers' weights became (4.0 is fp32 -> 8 bit)."""
        if self.quantized_weight_bytes_after == 0:
            return 1.0
        return self.quantized_weight_bytes_before / self.quantized_weight_bytes_after

    def skipped_by_kind(self) -> dict[str, int]:
        """How many modules were skipped for each kind of reason."""
        return dict(Counter(skipped.kind for skipped in self.skipped))


def quantize_module(
    module: nn.Module,
    qtype: str,
    exclude: Sequence[str] | None = None,
    component: str = "model",
    min_in_features: int = MIN_IN_FEATURES,
) -> QuantizationReport:
    """Quantize the weights of `module`'s Linear layers in place and freeze them.

    exclude: fnmatch patterns on module names (a parent's name covers its children); the model
    says which of its modules stay at full precision (`BaseModel.quantization_excludes()`); None: none.
    LoRA adapter layers (peft) are never quantized. Quantized weights have ``requires_grad`` off:
    they cannot be trained, only adapters on top of them.
    """
    from optimum import quanto

    quanto_qtype = resolve_qtype(qtype)
    if isinstance(module, nn.Linear):
        raise QuantizationError(
            f"quantize_module({component!r}) was given a bare {type(module).__name__}; pass the model that "
            "contains it (e.g. nn.Sequential(layer)), since a layer cannot replace itself."
        )
    patterns = tuple(exclude or ())
    tracer = get_tracer()
    report = QuantizationReport(component=component, qtype=quanto_qtype.name)
    with tracer.span("quantization", component=component, qtype=quanto_qtype.name, exclude=list(patterns)) as span:
        started = time.perf_counter()
        report.bytes_before = module_bytes(module)
        adapters = adapter_module_ids(module)
        for name, child in list(module.named_modules()):
            if id(child) not in adapters:
                _quantize_child(module, name, child, quanto_qtype, patterns, min_in_features, report)
        report.bytes_after = module_bytes(module)
        report.seconds = time.perf_counter() - started
        span.set(**_span_fields(report))
    return report


@contextlib.contextmanager
def quantize_while_loading(
    module: nn.Module,
    qtype: str,
    exclude: Sequence[str] | None = None,
    component: str = "model",
    min_in_features: int = MIN_IN_FEATURES,
) -> Iterator[tuple[Callable[[Iterable[str]], None], QuantizationReport]]:
    """Quantize `module` block by block while it is being filled (streamed loading).

    Yields ``(quantize, report)``: call ``quantize(module_names)`` once the named modules hold their
    weights. The modules chosen and the report are those `quantize_module` gives for the whole loaded
    model, in one ``quantization`` span around the load.
    """
    quanto_qtype = resolve_qtype(qtype)
    patterns = tuple(exclude or ())
    report = QuantizationReport(component=component, qtype=quanto_qtype.name)
    replaced_before = replaced_after = 0

    def quantize(module_names: Iterable[str]) -> None:
        nonlocal replaced_before, replaced_after
        for name in module_names:
            child = module.get_submodule(name)
            before, count = module_bytes(child, recurse=False), len(report.quantized)
            _quantize_child(module, name, child, quanto_qtype, patterns, min_in_features, report)
            if len(report.quantized) > count:
                replaced_before += before
                replaced_after += module_bytes(module.get_submodule(name), recurse=False)
                # quanto's temporaries are several times the layer; give them back before the next layer's.
                release_freed_host_memory()

    with get_tracer().span("quantization", component=component, qtype=quanto_qtype.name, exclude=list(patterns)) as span:
        started = time.perf_counter()
        yield quantize, report
        report.bytes_after = module_bytes(module)
        report.bytes_before = report.bytes_after - replaced_after + replaced_before
        report.seconds = time.perf_counter() - started
        span.set(**_span_fields(report))


def _span_fields(report: QuantizationReport) -> dict:
    """What the `quantization` span records of a finished report."""
    return {
        "quantized": len(report.quantized),
        "skipped": report.skipped_by_kind(),
        "bytes_before": report.bytes_before,
        "bytes_after": report.bytes_after,
        "weight_compression": round(report.weight_compression, 3),
    }


def _quantize_child(
    root: nn.Module,
    name: str,
    child: nn.Module,
    quanto_qtype,
    patterns: Sequence[str],
    min_in_features: int,
    report: QuantizationReport,
) -> None:
    """Quantize and freeze one module of `root` in place (or record why not) into `report`."""
    from optimum import quanto

    if not _has_own_weights(child):
        return
    reason = skip_reason(name, child, quanto_qtype.name, patterns, min_in_features)
    if reason is not None:
        report.skipped.append(SkippedModule(name, *reason))
        return
    weight_before = tensor_bytes(child.weight)
    quantized = quanto.quantize_module(child, weights=quanto_qtype)
    quantized.freeze()
    # A quantized weight cannot take optimizer steps; only adapters on top of it train.
    quantized.weight.requires_grad_(False)
    quantized.name = name
    _replace_module(root, name, quantized)
    weight_after = tensor_bytes(quantized.weight)
    report.quantized.append(name)
    report.quantized_weight_bytes_before += weight_before
    report.quantized_weight_bytes_after += weight_after
    get_tracer().event(
        "quantization",
        component=report.component,
        module=name,
        qtype=quanto_qtype.name,
        bytes_before=weight_before,
        bytes_after=weight_after,
    )


def _has_own_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _replace_module(root: nn.Module, name: str, replacement: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child_name, replacement)
