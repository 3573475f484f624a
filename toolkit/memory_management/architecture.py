"""LTX-2's weight-holding components on the meta device: their layers and sizes, no weights read.

Two sources:
- the published LTX-2 19B: the diffusers classes with their default arguments
  and a Gemma 3 12B text encoder from its published shape;
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
from toolkit.memory_management.selection import offloadable_kind

LOAD_ORDER = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")
"""Components with weights, in the order the LTX-2 loader reads them."""

GEMMA3_12B_TEXT = {
    "hidden_size": 3840,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "intermediate_size": 15360,
    "vocab_size": 262208,
}
GEMMA3_12B_VISION = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 896,
    "patch_size": 14,
    "vision_use_head": False,
}


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


def component_specs(folder: Path | None) -> dict[str, ComponentSpec]:
    """Every weight-holding component, in `LOAD_ORDER`, from `folder` or the published architecture.

    A folder is read on every call (its configs may change); the published architecture is built
    once per process (`published_component_specs`).
    """
    return published_component_specs() if folder is None else _build_specs(folder)


@functools.cache
def published_component_specs() -> dict[str, ComponentSpec]:
    """The published LTX-2 19B components; cached, since they never change (clear with ``cache_clear()``)."""
    return _build_specs(None)


def _build_specs(folder: Path | None) -> dict[str, ComponentSpec]:
    from accelerate import init_empty_weights

    specs = {}
    for name in LOAD_ORDER:
        with init_empty_weights():
            module = _published_component(name) if folder is None else _folder_component(folder, name)
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


def _component_class(name: str) -> type:
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    return {
        "connectors": LTX2TextConnectors,
        "transformer": LTX2VideoTransformer3DModel,
        "vae": AutoencoderKLLTX2Video,
        "audio_vae": AutoencoderKLLTX2Audio,
        "vocoder": LTX2Vocoder,
    }[name]


def _published_component(name: str) -> nn.Module:
    if name == "text_encoder":
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration

        config = Gemma3Config(text_config=GEMMA3_12B_TEXT, vision_config=GEMMA3_12B_VISION, mm_tokens_per_image=256)
        return Gemma3ForConditionalGeneration(config)
    return _component_class(name)()


def _folder_component(folder: Path, name: str) -> nn.Module:
    subfolder = folder / name
    if not (subfolder / "config.json").is_file():
        raise MemoryPlanError(
            f"memory plan: {subfolder} has no config.json; point model.name_or_path at a diffusers LTX-2 folder "
            f"with a subfolder for each of {', '.join(LOAD_ORDER)}."
        )
    if name == "text_encoder":
        import transformers

        config = transformers.AutoConfig.from_pretrained(subfolder, local_files_only=True)
        architecture = (getattr(config, "architectures", None) or [None])[0]
        model_class = getattr(transformers, architecture or "", None)
        if model_class is None:
            raise MemoryPlanError(
                f"memory plan: {subfolder / 'config.json'} names architecture {architecture!r}, which the "
                "installed transformers does not have; LTX-2 uses Gemma3ForConditionalGeneration."
            )
        return model_class(config)
    model_class = _component_class(name)
    return model_class.from_config(model_class.load_config(subfolder))


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
