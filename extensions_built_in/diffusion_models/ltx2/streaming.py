"""LTX-2's side of streamed loading: which components stream, from which files, in which blocks.

The transformer and the text encoder are the two components too big to hold
whole in host RAM at their stored dtype (19B and 12B parameters). Each is built
empty (meta device) and filled block by block by
toolkit.memory_management.streamed_loading, each module quantized (with
`quantize` / `quantize_te`) and placed once it holds its tensors, while the next are read. The files are
a diffusers folder's `<component>/*.safetensors` (sharded or not) or a single
LTX-2 file; names are translated by diffusers' single-file renames
(single_file_loading) or transformers' own checkpoint renames (Gemma's
`language_model.model.*` → `model.language_model.*`).

Everything else (and a hub id, or a folder without safetensors) loads through
from_pretrained as before: `plan_stream` says why in its `reason`.
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from toolkit.memory_management.streamed_loading import (
    LoadedModule,
    StreamReport,
    TensorSource,
    folder_sources,
    safetensors_files,
    stream_into,
)

from .checkpoint import CheckpointSource, component_class
from .checkpoint_configs import component_entry

STREAMED_COMPONENTS = ("transformer", "text_encoder")

# A block is one transformer block of the DiT, one decoder layer of the text encoder (and of its vision tower).
BLOCK_PATTERNS = {
    "transformer": (r"(?:.*\.)?transformer_blocks\.\d+",),
    "text_encoder": (r"(?:.*\.)?layers\.\d+",),
}


@dataclass
class StreamPlan:
    """How one component streams in: its empty model and where each tensor is; or why it does not."""

    component: str
    model: nn.Module | None = None
    sources: dict[str, TensorSource] = field(default_factory=dict)
    reason: str = ""


def plan_stream(source: CheckpointSource, name: str, dtype: torch.dtype) -> StreamPlan:
    """The empty model and tensor sources for component `name`, or a plan with only a `reason` when it cannot stream."""
    if name not in STREAMED_COMPONENTS:
        return StreamPlan(name, reason="small enough to load through from_pretrained")
    if name in source.single_file_components:
        from .single_file_loading import empty_component

        model, names = empty_component(source.single_file_header, name, source.base)
        path = str(source.single_file_header.path)
        return StreamPlan(name, model, {key: TensorSource(path, stored) for key, stored in names.items()})
    folder = Path(source.base) / name
    files = safetensors_files(folder)
    if not files:
        return StreamPlan(name, reason=f"{folder} holds no .safetensors files (a hub id, or .bin weights)")
    library, _ = component_entry(source.base, name)
    cls = component_class(source, name)
    if library == "transformers":
        return _transformers_plan(cls, source.base, name, dtype, files)
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls.from_config(cls.load_config(source.base, subfolder=name))
    return StreamPlan(name, model, folder_sources(files))


def stream_component(
    plan: StreamPlan, dtype: torch.dtype, quantize_block, device: torch.device | Callable[[str], torch.device]
) -> tuple[nn.Module, StreamReport]:
    """Fill `plan.model` block by block: each module quantized (`quantize_block(module_names)`, or None) and moved
    to its device as soon as it holds its tensors. `device` is one device for every block, or a function of the
    block's name (the offloaded share of the transformer stays on the host, the rest goes to the GPU as it arrives)."""
    model = plan.model
    device_of = device if callable(device) else (lambda _name: device)

    def place(loaded: LoadedModule) -> None:
        if quantize_block is not None:
            quantize_block((loaded.name,))
        target = device_of(loaded.block)
        if target.type != "cpu":
            model.get_submodule(loaded.name)._apply(lambda tensor: tensor.to(target), recurse=False)

    report = stream_into(model, plan.sources, dtype, BLOCK_PATTERNS[plan.component], place, plan.component)
    if hasattr(model, "tie_weights"):
        model.tie_weights()  # Gemma's lm_head shares embed_tokens, which was read once
    return model.requires_grad_(False).eval(), report


def _transformers_plan(cls, base: str, name: str, dtype: torch.dtype, files: list[Path]) -> StreamPlan:
    """A transformers model built empty, and its file names renamed by transformers' own checkpoint mapping."""
    from accelerate import init_empty_weights
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, rename_source_key

    from transformers.initialization import no_init_weights

    config = cls.config_class.from_pretrained(base, subfolder=name)
    with init_empty_weights(), no_init_weights():  # every weight comes from the files: no random init to skip
        model = cls._from_config(config, dtype=dtype)
    model.tie_weights()  # so that a tied lm_head is one tensor with embed_tokens, read once
    transforms = get_model_conversion_mapping(model)
    converters = [transform for transform in transforms if isinstance(transform, WeightConverter)]
    renamings = [transform for transform in transforms if not isinstance(transform, WeightConverter)]
    expected = model.state_dict()
    sources = {}
    for key, stored in folder_sources(files).items():
        renamed, converter = rename_source_key(key, renamings, converters, model.base_model_prefix, expected)
        if converter is not None:
            return StreamPlan(name, reason=f"{cls.__name__} converts {key} (not only a rename); from_pretrained does it")
        sources[renamed] = stored
    return StreamPlan(name, model, sources)
