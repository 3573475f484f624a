"""How much host RAM and device memory a LoRA run on LTX-2 needs, before any weight is read.

    plan = build_memory_plan(MemoryPlanSettings(quantize=True, lora_rank=32), device_total_bytes=24 * GIB)
    print(format_plan(plan))

Every component is built on the meta device (from the published architecture
or a local folder's configs), so the plan takes seconds for the 19B-22B models. It
covers what users of LTX-2 trainers run out of: host RAM at its peak while
loading (a component is read whole at its stored dtype before it is quantized
or moved), and device memory while prompts are cached, while training and
while sampling. When a total exceeds what the machine has, the plan says which
setting to change (`plan.suggestions`), found by trying the settings in turn.

Modelled like the LTX-2 loader does it: components load in `LOAD_ORDER` and
move to the device (only their offloaded layers stay on the host), except with
``low_vram`` where components wait in host RAM until a phase needs them. The
text encoder is unloaded once prompts are cached; the connectors stay for
sampling. LoRA weights, their gradients and AdamW's two moments are fp32.
Activations are not included: they depend on resolution, frames and batch size.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from toolkit.memory_management.architecture import LOAD_ORDER, ComponentSpec, component_specs
from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.plan_advice import suggest_changes
from toolkit.memory_management.plan_phases import PhaseTotal, phase_totals
from toolkit.memory_management.selection import check_offload_percent, offloaded_layer_count
from toolkit.quantize import (
    DEFAULT_EXCLUDE,
    quantized_linear_buffer_bytes,
    quantized_weight_bytes,
    resolve_qtype,
    skip_reason,
)
from toolkit.trace import get_tracer

GIB = 1024**3
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
ARCH_VERSIONS = {"ltx2": "2.0", "ltx2.3": "2.3", "ltx2.5": "2.5"}
"""`model.arch` -> the LTX-2 version planned when the weights cannot be read (`ltx2`: 2.0, the published default)."""
PUBLISHED_SIZES = {"2.0": "19B", "2.3": "22B", "2.5": "22B"}
"""How each version is named by its published files (2.3's "22B" counts the 3.2 B connectors with the 19 B transformer)."""
LORA_BYTES_PER_PARAM = {"weights": 4, "grads": 4, "optimizer": 8}
"""fp32 LoRA weights, fp32 gradients, AdamW's exp_avg and exp_avg_sq in fp32."""


@dataclass(frozen=True)
class MemoryPlanSettings:
    """The settings a memory plan depends on; names follow the job config's `model:` and `network:`.

    name_or_path: a local diffusers folder (its configs and safetensors headers are read),
    "tiny-ltx2" (.3, .5), or anything else (hub id, single file, None) for the published LTX-2 of `version`.
    version: the LTX-2 version ("2.0", "2.3", "2.5"): of the folder's weights, or from `model.arch`.
    stored_dtype: the checkpoint's dtype when no folder is read (the published one is bf16).
    vae_dtype: dtype of the video VAE, audio VAE and vocoder (the LTX-2 loader keeps them fp32).
    """

    name_or_path: str | None = None
    version: str = "2.0"
    dtype: str = "bf16"
    te_dtype: str | None = None
    vae_dtype: str = "fp32"
    stored_dtype: str = "bf16"
    quantize: bool = False
    qtype: str = "qfloat8"
    quantize_te: bool = False
    qtype_te: str = "qfloat8"
    layer_offloading: bool = False
    layer_offloading_transformer_percent: float = 1.0
    layer_offloading_text_encoder_percent: float = 1.0
    low_vram: bool = False
    lora_rank: int = 16

    @classmethod
    def from_config(cls, model, network=None) -> MemoryPlanSettings:
        """Settings from a job's `model` (and `network`) config objects, read by attribute."""
        return cls(
            name_or_path=model.name_or_path,
            version=ARCH_VERSIONS.get(getattr(model, "arch", "ltx2"), "2.0"),
            dtype=model.dtype,
            te_dtype=model.te_dtype,
            quantize=model.quantize,
            qtype=model.qtype,
            quantize_te=model.quantize_te,
            qtype_te=model.qtype_te,
            layer_offloading=model.layer_offloading,
            layer_offloading_transformer_percent=model.layer_offloading_transformer_percent,
            layer_offloading_text_encoder_percent=model.layer_offloading_text_encoder_percent,
            low_vram=model.low_vram,
            lora_rank=cls.lora_rank if network is None else network.linear,
        )


@dataclass(frozen=True)
class ComponentPlan:
    """One component's sizes: as stored, as loaded (dtype / qtype), and how much offloading keeps on the host."""

    name: str
    class_name: str
    params: int
    dtype: str
    qtype: str | None
    stored_bytes: int
    loaded_bytes: int
    offloaded_bytes: int
    quantized_layers: int
    offloaded_layers: int

    @property
    def device_bytes(self) -> int:
        return self.loaded_bytes - self.offloaded_bytes


@dataclass(frozen=True)
class LoraPlan:
    """The LoRA on the transformer's targeted linears: rank * (in + out) parameters per layer."""

    rank: int
    layers: int
    params: int

    @property
    def weight_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["weights"]

    @property
    def grad_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["grads"]

    @property
    def optimizer_bytes(self) -> int:
        return self.params * LORA_BYTES_PER_PARAM["optimizer"]


@dataclass
class MemoryPlan:
    """Sizes per component, totals per phase, the budgets they were compared to, and what to change.

    suggested_settings: `settings` with every suggestion applied (None when nothing was suggested);
    unresolved: one line for each total still over budget with them.
    """

    settings: MemoryPlanSettings
    source: str
    components: dict[str, ComponentPlan]
    lora: LoraPlan
    phases: list[PhaseTotal]
    device_budget: int | None
    device_budget_source: str
    host_budget: int | None
    host_budget_source: str
    suggestions: list[str] = field(default_factory=list)
    suggested_settings: MemoryPlanSettings | None = None
    unresolved: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """True when no total exceeds a known budget."""
        return all(phase.over == 0 for phase in self.phases)

    def phase(self, name: str, memory: str) -> PhaseTotal:
        """The total of phase `name` ("loading", "caching prompts", "training", "sampling") in `memory`."""
        for phase in self.phases:
            if phase.phase == name and phase.memory == memory:
                return phase
        raise KeyError(f"no {memory} total for phase {name!r}; phases: {[p.label for p in self.phases]}")


def build_memory_plan(
    settings: MemoryPlanSettings | None = None,
    device_total_bytes: int | None = None,
    host_total_bytes: int | None = None,
) -> MemoryPlan:
    """Plan host and device memory for `settings` without reading any weight.

    device_total_bytes / host_total_bytes: the budgets; None measures them now (free CUDA memory
    from ``torch.cuda.mem_get_info`` when CUDA is there, available RAM from ``psutil``).
    """
    started = time.perf_counter()
    settings = settings or MemoryPlanSettings()
    with get_tracer().span("memory_plan", settings=settings.__dict__) as span:
        _check_settings(settings)
        folder = _resolve_folder(settings.name_or_path)
        planner = _Planner(component_specs(folder, settings.version))
        device_budget, device_source = _device_budget(device_total_bytes)
        host_budget, host_source = _host_budget(host_total_bytes)
        components, lora, phases = planner.evaluate(settings, device_budget, host_budget)
        suggestions, suggested_settings, final_phases = suggest_changes(
            settings, phases, lambda candidate: planner.evaluate(candidate, device_budget, host_budget)[2]
        )
        plan = MemoryPlan(
            settings=settings,
            source=(
                f"folder {folder} (LTX-{settings.version})"
                if folder is not None
                else f"published LTX-{settings.version} {PUBLISHED_SIZES[settings.version]} architecture"
            ),
            components=components,
            lora=lora,
            phases=phases,
            device_budget=device_budget,
            device_budget_source=device_source,
            host_budget=host_budget,
            host_budget_source=host_source,
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
            suggestions=suggestions,
        )
    return plan


@dataclass(frozen=True)
class _LayerSize:
    parameter_bytes: int
    buffer_bytes: int  # quanto's scalar scales: they follow the layer's module, not its offloaded weights


@dataclass(frozen=True)
class _ComponentSizes:
    layers: list[_LayerSize]
    quantized: int


class _Planner:
    """Evaluates settings against the component specs; per-layer sizes are computed once per dtype/qtype."""

    def __init__(self, specs: dict[str, ComponentSpec]) -> None:
        self.specs = specs
        self._layer_sizes: dict[tuple[str, str, str | None], _ComponentSizes] = {}

    def evaluate(
        self, settings: MemoryPlanSettings, device_budget: int | None, host_budget: int | None
    ) -> tuple[dict[str, ComponentPlan], LoraPlan, list[PhaseTotal]]:
        components = {name: self._component(name, settings) for name in LOAD_ORDER}
        lora = self._lora(settings.lora_rank)
        phases = phase_totals(components, lora, settings.low_vram, device_budget, host_budget)
        return components, lora, phases

    def _component(self, name: str, settings: MemoryPlanSettings) -> ComponentPlan:
        spec = self.specs[name]
        dtype, qtype, percent = _component_settings(name, settings)
        sizes = self._sizes(spec, dtype, qtype)
        offloadable = [size.parameter_bytes for size, layer in zip(sizes.layers, spec.layers) if layer.offloadable]
        count = offloaded_layer_count(offloadable, percent)
        stored = spec.stored_bytes
        return ComponentPlan(
            name=name,
            class_name=spec.class_name,
            params=spec.params,
            dtype=dtype,
            qtype=qtype,
            stored_bytes=stored if stored is not None else spec.params * _dtype_bytes(settings.stored_dtype),
            loaded_bytes=sum(size.parameter_bytes + size.buffer_bytes for size in sizes.layers),
            offloaded_bytes=sum(offloadable[:count]),
            quantized_layers=sizes.quantized,
            offloaded_layers=count,
        )

    def _sizes(self, spec: ComponentSpec, dtype: str, qtype: str | None) -> _ComponentSizes:
        key = (spec.name, dtype, qtype)
        if key not in self._layer_sizes:
            exclude = DEFAULT_EXCLUDE.get(spec.name, ())
            torch_dtype, dtype_bytes = DTYPES[dtype], _dtype_bytes(dtype)
            layers, quantized = [], 0
            for layer in spec.layers:
                module = layer.module
                if qtype is None or skip_reason(layer.name, module, qtype, exclude, dtype=torch_dtype) is not None:
                    layers.append(_LayerSize(layer.params * dtype_bytes, 0))
                    continue
                bias = 0 if module.bias is None else module.bias.numel()
                weight = quantized_weight_bytes(module.out_features, module.in_features, qtype, torch_dtype)
                layers.append(_LayerSize(weight + bias * dtype_bytes, quantized_linear_buffer_bytes(torch_dtype)))
                quantized += 1
            self._layer_sizes[key] = _ComponentSizes(layers, quantized)
        return self._layer_sizes[key]

    def _lora(self, rank: int) -> LoraPlan:
        from toolkit.network.lora import LTX2_LORA_TARGETS

        targets = [
            layer.module
            for layer in self.specs["transformer"].layers
            if type(layer.module) is torch.nn.Linear and re.fullmatch(LTX2_LORA_TARGETS, layer.name)
        ]
        params = sum(rank * (module.in_features + module.out_features) for module in targets)
        return LoraPlan(rank=rank, layers=len(targets), params=params)


def _component_settings(name: str, settings: MemoryPlanSettings) -> tuple[str, str | None, float]:
    """(dtype, qtype or None, offload percent) of one component under `settings`."""
    offloading = settings.layer_offloading
    if name == "transformer":
        percent = settings.layer_offloading_transformer_percent if offloading else 0.0
        return settings.dtype, settings.qtype if settings.quantize else None, percent
    if name == "text_encoder":
        percent = settings.layer_offloading_text_encoder_percent if offloading else 0.0
        return settings.te_dtype or settings.dtype, settings.qtype_te if settings.quantize_te else None, percent
    if name == "connectors":
        return settings.dtype, None, 0.0
    return settings.vae_dtype, None, 0.0


def _check_settings(settings: MemoryPlanSettings) -> None:
    if settings.version not in PUBLISHED_SIZES:
        raise MemoryPlanError(
            f"memory plan: LTX-2 version {settings.version!r} is not one of {', '.join(PUBLISHED_SIZES)}"
        )
    for setting in ("dtype", "vae_dtype", "stored_dtype"):
        _check_dtype(setting, getattr(settings, setting))
    if settings.te_dtype is not None:
        _check_dtype("te_dtype", settings.te_dtype)
    if settings.quantize:
        resolve_qtype(settings.qtype)
    if settings.quantize_te:
        resolve_qtype(settings.qtype_te)
    for setting in ("layer_offloading_transformer_percent", "layer_offloading_text_encoder_percent"):
        check_offload_percent(getattr(settings, setting), setting=f"model.{setting}")
    if settings.lora_rank < 1:
        raise MemoryPlanError(f"memory plan: network.linear (LoRA rank) is {settings.lora_rank}; it must be 1 or more.")


def _check_dtype(setting: str, value: str) -> None:
    if value not in DTYPES:
        raise MemoryPlanError(f"memory plan: {setting} is {value!r}; use one of {', '.join(DTYPES)}.")


def _dtype_bytes(dtype: str) -> int:
    return torch.empty((), dtype=DTYPES[dtype], device="meta").element_size()


def _resolve_folder(name_or_path: str | None) -> Path | None:
    """The diffusers folder to read configs from, or None for the published architecture."""
    from toolkit.models.tiny_ltx2 import TINY_NAMES, ensure_tiny_ltx2

    if name_or_path is None:
        return None
    if name_or_path in TINY_NAMES:
        return Path(ensure_tiny_ltx2(version=TINY_NAMES[name_or_path]))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise MemoryPlanError(
                f"memory plan: folder {path} has no model_index.json; point model.name_or_path at a diffusers "
                "LTX-2 folder (model_index.json plus transformer/, vae/, text_encoder/ ... subfolders)."
            )
        return path
    return None


def _device_budget(given: int | None) -> tuple[int | None, str]:
    if given is not None:
        return int(given), "given"
    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free), f"free on {torch.cuda.get_device_name()} now (torch.cuda.mem_get_info)"
    return None, "unknown: no CUDA device here; set model.vram_gb (e.g. 24) to check the device totals"


def _host_budget(given: int | None) -> tuple[int | None, str]:
    import psutil

    if given is not None:
        return int(given), "given"
    return int(psutil.virtual_memory().available), "available host RAM now (psutil.virtual_memory)"


def format_plan(plan: MemoryPlan) -> str:
    """The plan as a readable table: components, LoRA, phase totals against budgets, what to change."""
    from toolkit.memory_management.plan_format import plan_lines

    return "\n".join(plan_lines(plan))
