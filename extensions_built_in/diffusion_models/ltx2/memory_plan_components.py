"""LTX-2's weight-holding components on the meta device: their layers and sizes, no weights read.

Two sources:
- the published LTX-2 of a version (2.0, 2.3, 2.5): the diffusers classes
  with that version's arguments (published_versions.py) and its text encoder
  from its published shape;
- a local diffusers folder (model_index.json plus a subfolder per component):
  each component's config.json, and the bytes its weight files hold, read from
  the safetensors headers.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.published_versions import published_component
from toolkit.memory_management.selection import offloadable_kind

LOAD_ORDER = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")
"""Components with weights, in the order the LTX-2 loader reads them."""

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


def component_specs(folder: Path | None, version: str = "2.0") -> dict[str, ComponentSpec]:
    """Every weight-holding component, in `LOAD_ORDER`, from `folder` or the published LTX-`version` architecture.

    A folder is read on every call (its configs may change); the published architecture is built
    once per process and version (`published_component_specs`).
    """
    return published_component_specs(version) if folder is None else _build_specs(folder, version)


@functools.cache
def published_component_specs(version: str = "2.0") -> dict[str, ComponentSpec]:
    """The published LTX-`version` components; cached, since they never change (clear with ``cache_clear()``)."""
    return _build_specs(None, version)


def _build_specs(folder: Path | None, version: str) -> dict[str, ComponentSpec]:
    from accelerate import init_empty_weights

    specs = {}
    for name in LOAD_ORDER:
        with init_empty_weights():
            module = published_component(name, version) if folder is None else _folder_component(folder, name)
        stored = None if folder is None else _stored_bytes(folder / name)
        specs[name] = _describe(name, module, stored)
    return specs


def _describe(name: str, module: nn.Module, stored_bytes: int | None) -> ComponentSpec:
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


def _component_class(folder: Path, name: str) -> type:
    """The class the folder's model_index.json names for `name` (an LTX-2.3 folder: LTX2VocoderWithBWE)."""
    from toolkit.models.model_index import UnknownComponentClass, index_entry, resolve_class

    index_path = folder / "model_index.json"
    try:
        return resolve_class(*index_entry(json.loads(index_path.read_text()), name))
    except (OSError, ValueError, UnknownComponentClass) as error:
        raise MemoryPlanError(
            f"memory plan: {index_path}: {error}; point model.name_or_path at a diffusers LTX-2 folder saved with "
            "save_pretrained"
        ) from error


def _folder_component(folder: Path, name: str) -> nn.Module:
    subfolder = folder / name
    if not (subfolder / "config.json").is_file():
        raise MemoryPlanError(
            f"memory plan: {subfolder} has no config.json; point model.name_or_path at a diffusers LTX-2 folder "
            f"with a subfolder for each of {', '.join(LOAD_ORDER)}."
        )
    model_class = _component_class(folder, name)
    try:
        if hasattr(model_class, "load_config"):
            return model_class.from_config(model_class.load_config(subfolder))
        return model_class(model_class.config_class.from_pretrained(subfolder, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - a config the class rejects surfaces as many exception types
        raise MemoryPlanError(
            f"memory plan: the {name} ({model_class.__name__}) cannot be built from {subfolder / 'config.json'}: "
            f"{type(error).__name__}: {error}; model_index.json must name the class the component was saved with."
        ) from error


def _stored_bytes(subfolder: Path) -> int:
    """Bytes of tensor data in a component's safetensors files, from their headers only."""
    files = sorted(subfolder.glob("*.safetensors"))
    if not files:
        raise MemoryPlanError(
            f"memory plan: {subfolder} has no .safetensors weights; save the component with "
            "save_pretrained(safe_serialization=True) or point model.name_or_path at a folder that has them."
        )
    return sum(_safetensors_data_bytes(path) for path in files)


def _safetensors_data_bytes(path: Path) -> int:
    with path.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_length))
    return sum(
        entry["data_offsets"][1] - entry["data_offsets"][0] for key, entry in header.items() if key != "__metadata__"
    )
