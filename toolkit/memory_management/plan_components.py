"""What a model tells the memory plan: its components on the meta device, their roles, its LoRA targets.

The plan engine knows no model. A model class registered for `model.arch`
provides `memory_plan_components(settings) -> PlannedModel`: each component
with weights, in the order the model loads them, described layer by layer
(`describe_component`), and the role each plays in a LoRA run (the phases
are written in roles, not in one model's component names):

- ``text_encoder``: encodes prompts, then may be unloaded (`te_dtype`, `quantize_te`);
- ``prompt_adapter``: turns text-encoder states into what the denoiser reads (e.g. LTX-2's connectors);
- ``denoiser``: the model the LoRA trains (`dtype`, `quantize`, layer offloading);
- ``decoder``: VAEs and vocoders (`vae_dtype`), idle while training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.selection import offloadable_kind
from toolkit.safetensors_files import read_header

ROLES = ("text_encoder", "prompt_adapter", "denoiser", "decoder")


@dataclass(frozen=True)
class LayerSpec:
    """A module holding parameters, with the parameter count it adds (shared tensors counted once)."""

    name: str
    module: nn.Module
    params: int
    offloadable: bool


@dataclass(frozen=True)
class ComponentSpec:
    """One component's architecture; stored_bytes is None when no checkpoint files were read."""

    name: str
    class_name: str
    params: int
    layers: tuple[LayerSpec, ...]
    stored_bytes: int | None


@dataclass(frozen=True)
class PlannedModel:
    """A model's components for the plan, in load order, with their roles (`ROLES`).

    source: how the plan names what it planned ("published LTX-2.0 19B architecture", "folder ...").
    lora_targets: a regular expression on the denoiser's layer names: the Linear layers a LoRA trains.
    quantize_exclude: per component, the layer-name patterns quantization leaves at full precision.
    block_patterns: per component that streams, the regexes naming its blocks (plan_loading.py);
    a component not listed loads whole.
    """

    source: str
    components: dict[str, ComponentSpec]
    roles: dict[str, str]
    lora_targets: str
    quantize_exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)
    block_patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, role in self.roles.items():
            if role not in ROLES:
                raise MemoryPlanError(f"memory plan: component {name!r} has role {role!r}; roles are {', '.join(ROLES)}")
        missing = [name for name in self.components if name not in self.roles]
        if missing:
            raise MemoryPlanError(f"memory plan: components {missing} have no role; give each one of {', '.join(ROLES)}")

    def named(self, role: str) -> tuple[str, ...]:
        """The components playing `role`, in load order."""
        return tuple(name for name in self.components if self.roles[name] == role)


def planned_model(settings, roles: tuple[str, ...] | None = None) -> PlannedModel:
    """The components of `settings.arch`'s model class (the registry's arch -> class, imported on demand); `roles`:
    only those of these roles are needed."""
    from toolkit.extensions import load_model_class

    model_class = load_model_class(settings.arch)
    provide = getattr(model_class, "memory_plan_components", None)
    if not callable(provide):
        raise MemoryPlanError(
            f"memory plan: model arch {settings.arch!r} ({model_class.__name__}) has no memory_plan_components; "
            "the dry run cannot plan it."
        )
    return provide(settings, roles)


def describe_component(name: str, module: nn.Module, stored_bytes: int | None) -> ComponentSpec:
    """A component built on the meta device, layer by layer: each module that owns parameters."""
    tie = getattr(module, "tie_weights", None)
    if callable(tie):
        # Built on the meta device, transformers models skip tying; the checkpoint stores tied weights once.
        tie()
    seen: set[int] = set()
    layers = []
    for layer_name, layer in module.named_modules():
        own = [p for p in layer.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        if own:
            count = sum(p.numel() for p in own)
            layers.append(LayerSpec(layer_name, layer, count, offloadable_kind(layer) is not None))
    return ComponentSpec(
        name=name,
        class_name=type(module).__name__,
        params=sum(layer.params for layer in layers),
        layers=tuple(layers),
        stored_bytes=stored_bytes,
    )


def stored_bytes(subfolder: Path) -> int:
    """Bytes of tensor data in a component's safetensors files, from their headers only."""
    files = sorted(subfolder.glob("*.safetensors"))
    if not files:
        raise MemoryPlanError(
            f"memory plan: {subfolder} has no .safetensors weights; save the component with "
            "save_pretrained(safe_serialization=True) or point model.name_or_path at a folder that has them."
        )
    return sum(_safetensors_data_bytes(path) for path in files)


def _safetensors_data_bytes(path: Path) -> int:
    header, _ = read_header(path)
    return sum(
        entry["data_offsets"][1] - entry["data_offsets"][0] for key, entry in header.items() if key != "__metadata__"
    )
