"""How much host RAM and device memory a LoRA run needs, before any weight is read.

    plan = build_memory_plan(MemoryPlanSettings(quantize=True, lora_rank=32), device_total_bytes=24 * GIB)
    print(format_plan(plan))

The model class of `settings.arch` provides its components built on the meta
device (`memory_plan_components`, plan_components.py), so the plan takes
seconds for LTX-2's 19B-22B models and this module knows no model. It covers
what users of LTX-2 trainers run out of: host RAM at its peak while loading
(streamed block by block, plan_loading.py), and device memory while prompts
are cached, while training and while sampling (plan_phases.py). When a total
exceeds what the machine has, the plan says which setting to change
(`plan.suggestions`), found by trying the settings in turn, and it lists what
it assumed (`plan.assumptions`).

LoRA weights, their gradients and AdamW's two moments are fp32. Activations
are not included: they depend on resolution, frames and batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from toolkit.memory_management.plan_advice import suggest_changes
from toolkit.memory_management.plan_assumptions import assumptions
from toolkit.memory_management.plan_components import ComponentSpec, PlannedModel, planned_model
from toolkit.memory_management.plan_format import format_plan
from toolkit.memory_management.plan_loading import LoadStep, largest_block, layer_blocks, load_steps
from toolkit.memory_management.plan_phases import PhaseTotal, phase_totals
from toolkit.memory_management.plan_result import GIB, ComponentPlan, LoraPlan, MemoryPlan
from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.plan_settings import ADAPTER_KINDS, DTYPES, MemoryPlanSettings, check_settings, dtype_bytes, role_settings
from toolkit.memory_management.selection import offloaded_layer_count
from toolkit.memory_management.quantized_sizes import quantized_linear_buffer_bytes, quantized_weight_bytes, skip_reason
from toolkit.trace import get_tracer

__all__ = ["GIB", "LoraPlan", "MemoryPlan", "MemoryPlanSettings", "build_memory_plan", "format_plan", "plan_lora"]

def build_memory_plan(
    settings: MemoryPlanSettings | None = None,
    device_total_bytes: int | None = None,
    host_total_bytes: int | None = None,
    model: PlannedModel | None = None,
) -> MemoryPlan:
    """Plan host and device memory for `settings` without reading any weight.

    device_total_bytes / host_total_bytes: the budgets; None measures them now (free CUDA memory
    from ``torch.cuda.mem_get_info`` when CUDA is there, available RAM from ``psutil``).
    model: the components to plan; None asks `settings.arch`'s model class (`memory_plan_components`).
    """
    started = time.perf_counter()
    settings = settings or MemoryPlanSettings()
    with get_tracer().span("memory_plan", settings=settings.__dict__) as span:
        check_settings(settings)
        model = model or planned_model(settings)
        planner = _Planner(model)
        device_budget, device_source = _device_budget(device_total_bytes)
        host_budget, host_source = _host_budget(host_total_bytes)
        components, lora, steps, phases = planner.evaluate(settings, device_budget, host_budget)
        suggestions, suggested_settings, final_phases = suggest_changes(
            settings, phases, lambda candidate: planner.evaluate(candidate, device_budget, host_budget)[3]
        )
        plan = MemoryPlan(
            settings=settings,
            source=model.source,
            components=components,
            lora=lora,
            loading=steps,
            phases=phases,
            device_budget=device_budget,
            device_budget_source=device_source,
            host_budget=host_budget,
            host_budget_source=host_source,
            assumptions=assumptions(settings, components, steps),
            suggestions=suggestions,
            suggested_settings=suggested_settings if suggestions else None,
            unresolved=[phase.shortfall() for phase in final_phases if phase.over],
            seconds=time.perf_counter() - started,
        )
        span.set(
            source=plan.source,
            params={name: component.params for name, component in components.items()},
            totals={f"{phase.memory} {phase.label}": phase.total for phase in phases},
            device_budget=device_budget,
            host_budget=host_budget,
            fits=plan.fits,
            assumptions=plan.assumptions,
            suggestions=suggestions,
        )
    return plan


def plan_lora(settings: MemoryPlanSettings, model: PlannedModel | None = None) -> LoraPlan:
    """The plan's adapter alone (its rank, layers and parameter count), without the phases: what a run needs to
    size its saves before loading. model: as for `build_memory_plan`."""
    check_settings(settings)
    return _Planner(model or planned_model(settings, roles=("denoiser",))).lora(settings)


@dataclass(frozen=True)
class _LayerSize:
    parameter_bytes: int
    buffer_bytes: int  # quanto's scalar scales: they follow the layer's module, not its offloaded weights
    quantized: bool = False

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.buffer_bytes


@dataclass(frozen=True)
class _ComponentSizes:
    layers: list[_LayerSize]
    quantized: int
    largest_quantized_weight: int = 0  # elements of the largest quantized Linear weight


class _Planner:
    """Evaluates settings against a model's components; per-layer sizes are computed once per dtype/qtype."""

    def __init__(self, model: PlannedModel) -> None:
        self.model = model
        self._layer_sizes: dict[tuple[str, str, str | None], _ComponentSizes] = {}
        self._loras: dict[str, LoraPlan] = {}

    def evaluate(
        self, settings: MemoryPlanSettings, device_budget: int | None, host_budget: int | None
    ) -> tuple[dict[str, ComponentPlan], LoraPlan, list[LoadStep], list[PhaseTotal]]:
        components = {name: self._component(name, settings) for name in self.model.components}
        lora = self.lora(settings)
        steps = load_steps(
            {name: (c.host_bytes, c.loaded_bytes - c.host_bytes) for name, c in components.items()},
            {name: c.block for name, c in components.items()},
        )
        phases = phase_totals(components, self.model.roles, steps, lora, settings.low_vram, device_budget, host_budget)
        return components, lora, steps, phases

    def _component(self, name: str, settings: MemoryPlanSettings) -> ComponentPlan:
        spec, role = self.model.components[name], self.model.roles[name]
        dtype, qtype, percent = role_settings(role, settings)
        sizes = self._sizes(spec, dtype, qtype)
        offloadable = [size.parameter_bytes for size, layer in zip(sizes.layers, spec.layers) if layer.offloadable]
        count = offloaded_layer_count(offloadable, percent)
        stored = spec.stored_bytes if spec.stored_bytes is not None else spec.params * dtype_bytes(settings.stored_dtype)
        loaded = sum(size.total for size in sizes.layers)
        offloaded = sum(offloadable[:count])
        # low_vram keeps everything but the denoiser waiting on the host between its uses.
        waits_on_host = settings.device_is_host or (settings.low_vram and role != "denoiser")
        host = loaded if waits_on_host else offloaded
        dequantized = 2 * sizes.largest_quantized_weight * dtype_bytes(dtype)
        block = largest_block(
            layer_blocks([layer.name for layer in spec.layers], self.model.block_patterns.get(name)),
            [layer.params * dtype_bytes(dtype) for layer in spec.layers],
            [size.total if size.quantized else 0 for size in sizes.layers],
            kept_on_host=host == loaded,
        )
        return ComponentPlan(
            name=name,
            role=role,
            class_name=spec.class_name,
            params=spec.params,
            dtype=dtype,
            qtype=qtype,
            stored_bytes=stored,
            loaded_bytes=loaded,
            offloaded_bytes=offloaded,
            quantized_layers=sizes.quantized,
            offloaded_layers=count,
            host_bytes=host,
            block=block,
            dequantized_bytes=dequantized,
        )

    def _sizes(self, spec: ComponentSpec, dtype: str, qtype: str | None) -> _ComponentSizes:
        key = (spec.name, dtype, qtype)
        if key not in self._layer_sizes:
            exclude = self.model.quantize_exclude.get(spec.name, ())
            torch_dtype, element_bytes = DTYPES[dtype], dtype_bytes(dtype)
            layers, quantized, largest = [], 0, 0
            for layer in spec.layers:
                module = layer.module
                if qtype is None or skip_reason(layer.name, module, qtype, exclude, dtype=torch_dtype) is not None:
                    layers.append(_LayerSize(layer.params * element_bytes, 0))
                    continue
                bias = 0 if module.bias is None else module.bias.numel()
                weight = quantized_weight_bytes(module.out_features, module.in_features, qtype, torch_dtype)
                layers.append(_LayerSize(weight + bias * element_bytes, quantized_linear_buffer_bytes(torch_dtype), True))
                quantized += 1
                largest = max(largest, module.out_features * module.in_features)
            self._layer_sizes[key] = _ComponentSizes(layers, quantized, largest)
        return self._layer_sizes[key]

    def lora(self, settings: MemoryPlanSettings) -> LoraPlan:
        """The adapter the settings describe on the denoiser's layers, sized as the trainer's attach will size it
        (toolkit.network: the same target selection, peft's own parameter count); once per adapter setting."""
        from toolkit.network.attach import adapter_parameter_count
        from toolkit.network.lora import select_targets

        network = settings.network_config()
        key = network.model_dump_json()
        if key not in self._loras:
            targets = {}
            for name in self.model.named("denoiser"):
                spec = self.model.components[name]
                layers = {layer.name: layer.module for layer in spec.layers}
                try:
                    chosen = select_targets(layers.items(), network, self.model.lora_targets, spec.class_name)
                except ValueError as error:  # no layer selected: say so as the plan's error
                    raise MemoryPlanError(f"memory plan: {error}") from error
                targets.update({f"{name}.{layer}": layers[layer] for layer in chosen})
            kind = ADAPTER_KINDS[settings.network_type]
            full_rank = network.type == "lokr" and network.lokr_full_rank
            self._loras[key] = LoraPlan(
                settings.lora_rank, len(targets), adapter_parameter_count(network, targets), kind, full_rank
            )
        return self._loras[key]


def _device_budget(given: int | None) -> tuple[int | None, str]:
    if given is not None:
        return int(given), "given (model.vram_gb)"
    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free), f"free on {torch.cuda.get_device_name()} now (torch.cuda.mem_get_info)"
    return None, "unknown: no CUDA device here; set model.vram_gb (e.g. 24) to check the device totals"


def _host_budget(given: int | None) -> tuple[int | None, str]:
    import psutil

    if given is not None:
        return int(given), "given (model.ram_gb)"
    return int(psutil.virtual_memory().available), "available host RAM now (psutil.virtual_memory; model.ram_gb sets it)"
