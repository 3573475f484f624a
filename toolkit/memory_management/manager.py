"""MemoryManager: layer offloading, so a model larger than the device still trains and samples.

    report = MemoryManager.attach(transformer, "cuda", offload_percent=0.5)
    ...                                   # train / sample as usual
    MemoryManager.detach(transformer)     # an ordinary module on the device again

Attach picks Linear and Conv layers, in module order, until their weights make up
``offload_percent`` of the bytes of all such layers. Those weights stay in host
memory (pinned when CUDA is there) and visit the device only while their layer
runs, forward and backward (see `offloaded_forward`). Everything else (norms,
embeddings, the other layers, LoRA adapters) moves to the device.

Call attach after quantization and after adding LoRA adapters: a peft
``lora.Linear`` is managed through its ``base_layer`` (frozen, possibly
quantized), while ``lora_A`` / ``lora_B`` stay on the device and train there.
Do not call ``.to(device)`` on an attached model: it would move the managed
weights to the device, which still runs correctly but saves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toolkit.memory_management.adapters import adapter_module_ids
from toolkit.memory_management.errors import OffloadError
from toolkit.memory_management.module_names import matching_pattern
from toolkit.memory_management.offloaded_forward import ManagedLayer, WeightMover
from toolkit.memory_management.report import ManagedModule, OffloadReport, UnmanagedModule
from toolkit.memory_management.selection import check_offload_percent, offloadable_kind, offloaded_layer_count
from toolkit.memory_management.tensors import parameter_bytes
from toolkit.trace import get_tracer

_ATTRIBUTE = "_ltx2_memory_manager"


class MemoryManager:
    """The offloading state of one model: its managed layers and how to undo them."""

    def __init__(self, device: torch.device, layers: list[ManagedLayer], report: OffloadReport) -> None:
        self.device = device
        self.layers = layers
        self.report = report

    @classmethod
    def attach(
        cls,
        module: nn.Module,
        device: torch.device | str,
        offload_percent: float,
        ignore_modules: Sequence[str] = (),
    ) -> OffloadReport:
        """Offload `offload_percent` of `module`'s Linear/Conv layer bytes to host memory.

        ignore_modules: fnmatch patterns on module names (a parent's name covers its children);
        matching layers are never offloaded and move to the device.
        """
        if getattr(module, _ATTRIBUTE, None) is not None:
            raise OffloadError(
                f"Layer offloading is already attached to this {type(module).__name__}; call "
                "MemoryManager.detach(model) before attaching it again."
            )
        percent = check_offload_percent(offload_percent)
        device = torch.device(device)
        tracer = get_tracer()
        with tracer.span(
            "MemoryManager.attach",
            model=type(module).__name__,
            device=str(device),
            offload_percent=percent,
            ignore_modules=list(ignore_modules),
        ) as span:
            candidates, unmanaged = _survey(module, ignore_modules)
            sizes = [parameter_bytes(layer, recurse=False) for _, layer, _ in candidates]
            count = offloaded_layer_count(sizes, percent)
            report = OffloadReport(
                device=str(device),
                offload_percent_asked=percent,
                linear_layers=sum(1 for _, _, kind in candidates if kind == "linear"),
                conv_layers=sum(1 for _, _, kind in candidates if kind == "conv"),
                offloadable_bytes=sum(sizes),
            )
            for name, child, _ in candidates[count:]:
                unmanaged.append((name, child, "beyond the offload share"))
            for name, child, reason in unmanaged:
                child._apply(lambda tensor: tensor.to(device), recurse=False)
                report.unmanaged.append(UnmanagedModule(name, reason, str(device)))
            mover = WeightMover(device)
            for index, (name, child, kind) in enumerate(candidates[:count]):
                mover.layers.append(_manage(name, child, kind, index, mover, device, report))
            report.bytes_on_host = sum(managed.bytes for managed in report.managed)
            if report.offloadable_bytes:
                report.offload_percent_achieved = report.bytes_on_host / report.offloadable_bytes
            for managed in report.managed:
                tracer.event(
                    "MemoryManager.offload",
                    module=managed.name,
                    kind=managed.kind,
                    weight_device=managed.weight_device,
                    compute_device=managed.compute_device,
                    bytes=managed.bytes,
                    pinned=managed.pinned,
                    quantized=managed.quantized,
                )
            span.set(
                **report.counts(),
                offload_percent_achieved=round(report.offload_percent_achieved, 4),
                bytes_on_host=report.bytes_on_host,
                managed_modules=report.managed_names,
                unmanaged_modules={entry.name: entry.reason for entry in report.unmanaged},
            )
        setattr(module, _ATTRIBUTE, cls(device, mover.layers, report))
        return report

    @classmethod
    def detach(cls, module: nn.Module) -> None:
        """Undo `attach`: original forwards back, managed weights moved to the attach device."""
        manager: MemoryManager | None = getattr(module, _ATTRIBUTE, None)
        if manager is None:
            raise OffloadError(
                f"MemoryManager.detach: no layer offloading is attached to this {type(module).__name__}."
            )
        with get_tracer().span("MemoryManager.detach", device=str(manager.device), layers=len(manager.layers)):
            for layer in manager.layers:
                layer.uninstall()
                layer.module._apply(lambda tensor: tensor.to(manager.device), recurse=False)
        delattr(module, _ATTRIBUTE)

    @classmethod
    def report_of(cls, module: nn.Module) -> OffloadReport | None:
        """The report of the offloading attached to `module`, or None when there is none."""
        manager: MemoryManager | None = getattr(module, _ATTRIBUTE, None)
        return None if manager is None else manager.report


def _survey(
    root: nn.Module, ignore_modules: Sequence[str]
) -> tuple[list[tuple[str, nn.Module, str]], list[tuple[str, nn.Module, str]]]:
    """Offloadable layers (name, module, kind) in module order, and the other modules with tensors and why."""
    adapters = adapter_module_ids(root)
    candidates: list[tuple[str, nn.Module, str]] = []
    unmanaged: list[tuple[str, nn.Module, str]] = []
    for name, child in root.named_modules():
        if not _has_own_tensors(child):
            continue
        kind = offloadable_kind(child)
        if id(child) in adapters:
            unmanaged.append((name, child, "LoRA adapter (trained every step, stays on the device)"))
        elif kind is None:
            unmanaged.append((name, child, f"not an offloadable Linear or Conv ({type(child).__name__})"))
        elif (pattern := matching_pattern(name, ignore_modules)) is not None:
            unmanaged.append((name, child, f"ignored by pattern {pattern!r}"))
        else:
            candidates.append((name, child, kind))
    return candidates, unmanaged


def _manage(
    name: str,
    module: nn.Module,
    kind: str,
    index: int,
    mover: WeightMover,
    device: torch.device,
    report: OffloadReport,
) -> ManagedLayer:
    from optimum.quanto import QModuleMixin

    module._apply(lambda tensor: tensor.to("cpu"), recurse=False)
    for buffer_name, buffer in module._buffers.items():
        if buffer is not None:
            module._buffers[buffer_name] = buffer.to(device)
    pinned = device.type == "cuda" and _pin(module)
    layer = ManagedLayer(name, module, index, mover)
    layer.install()
    report.managed.append(
        ManagedModule(
            name=name,
            kind=kind,
            weight_device="cpu",
            compute_device=str(device),
            bytes=parameter_bytes(module, recurse=False),
            pinned=pinned,
            quantized=isinstance(module, QModuleMixin),
        )
    )
    return layer


def _pin(module: nn.Module) -> bool:
    """Pin the layer's plain weights so copies to the device run asynchronously; False if any stays pageable.

    Quantized weights (tensor subclasses) have no pin_memory: they are copied synchronously.
    """
    pinned = True
    for parameter in module._parameters.values():
        if parameter is None:
            continue
        if type(parameter.data) is torch.Tensor:
            parameter.data = parameter.data.pin_memory()
        else:
            pinned = False
    return pinned


def _has_own_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))

