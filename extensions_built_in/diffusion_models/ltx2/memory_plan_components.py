"""LTX-2's weight-holding components for the memory plan, on the meta device: no weight is read.

Two sources:
- the published LTX-2 of a version (2.0, 2.3, 2.5): the diffusers classes
  with that version's arguments (published_versions.py) and its text encoder
  from its published shape;
- a local diffusers folder (model_index.json plus a subfolder per component,
  `tiny-ltx2` names included, and a hub id whose snapshot the local Hugging
  Face cache holds): each component's config.json, and the bytes its weight
  files hold, read from the safetensors headers.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from toolkit.memory_management.errors import MemoryPlanError
from toolkit.memory_management.plan_components import PlannedModel, describe_component, stored_bytes

from .published_versions import published_component
from .streaming import BLOCK_PATTERNS, STREAMED_COMPONENTS

LOAD_ORDER = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")
"""Components with weights, in the order the LTX-2 loader reads them (checkpoint.COMPONENT_ORDER)."""
ROLES = {
    "text_encoder": "text_encoder",
    "connectors": "prompt_adapter",
    "transformer": "denoiser",
    "vae": "decoder",
    "audio_vae": "decoder",
    "vocoder": "decoder",
}
ARCH_VERSIONS = {"ltx2": "2.0", "ltx2.3": "2.3", "ltx2.5": "2.5"}
"""`model.arch` -> the LTX-2 version planned when the weights cannot be read (`ltx2`: 2.0, the published default)."""
PUBLISHED_SIZES = {"2.0": "19B", "2.3": "22B", "2.5": "22B"}
"""How each version is named by its published files (2.3's "22B" counts the 3.2 B connectors with the 19 B transformer)."""


def memory_plan_components(settings, roles=None) -> PlannedModel:
    """LTX-2's components for `settings` (a MemoryPlanSettings): from its folder, else the published version.
    `roles`: build only the components of these roles (None: all)."""
    from .lora_names import LTX2_LORA_TARGETS
    from .quantization_excludes import DEFAULT_EXCLUDE

    version = settings.version or ARCH_VERSIONS.get(settings.arch, "2.0")
    if version not in PUBLISHED_SIZES:
        raise MemoryPlanError(f"memory plan: LTX-2 version {version!r} is not one of {', '.join(PUBLISHED_SIZES)}")
    folder = _resolve_folder(settings.name_or_path)
    names = tuple(name for name in LOAD_ORDER if roles is None or ROLES[name] in roles)
    if folder is None:
        specs = published_component_specs(version, names)
        source = f"published LTX-{version} {PUBLISHED_SIZES[version]} architecture"
    else:
        specs = _build_specs(folder, version, names)
        source = f"folder {folder} (LTX-{version})"
    return PlannedModel(
        source=source,
        components=specs,
        roles={name: ROLES[name] for name in specs},
        lora_targets=LTX2_LORA_TARGETS,
        quantize_exclude=dict(DEFAULT_EXCLUDE),
        block_patterns={name: BLOCK_PATTERNS[name] for name in STREAMED_COMPONENTS},
    )


def published_component_specs(version: str = "2.0", names: tuple[str, ...] = LOAD_ORDER) -> dict:
    """The published LTX-`version` components `names`; each built once, since they never change (a dry run sizes
    the LoRA on the transformer, then plans them all)."""
    return {name: _published_component_spec(version, name) for name in names}


@functools.cache
def _published_component_spec(version: str, name: str):
    return _build_specs(None, version, (name,))[name]


def forget_published_specs() -> None:
    """Drop the published components built so far (the next plan builds them again)."""
    _published_component_spec.cache_clear()


def _build_specs(folder: Path | None, version: str, names: tuple[str, ...] = LOAD_ORDER) -> dict:
    from accelerate import init_empty_weights

    specs = {}
    for name in names:
        with init_empty_weights():
            module = published_component(name, version) if folder is None else _folder_component(folder, name)
        stored = None if folder is None else stored_bytes(folder / name)
        specs[name] = describe_component(name, module, stored)
    return specs


def _resolve_folder(name_or_path: str | None) -> Path | None:
    """The diffusers folder to read configs from, or None for the published architecture (a single file, a hub id
    the local Hugging Face cache does not hold)."""
    from .tiny.model import TINY_NAMES, ensure_tiny_ltx2

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
    from toolkit.hub_snapshot import local_snapshot

    from .checkpoint_check import is_unreadable_hub_id

    if not is_unreadable_hub_id(name_or_path):
        return None
    return local_snapshot(name_or_path, LOAD_ORDER)  # a hub id: its cached snapshot, never a download


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


def _folder_component(folder: Path, name: str):
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
