"""Where an LTX-2 checkpoint's components come from, and loading each one.

Three sources, one loader:
- a diffusers folder (model_index.json plus a subfolder per component),
  which is also what `tiny-ltx2` builds into its cache;
- a hub id, handed to diffusers/transformers as is (it downloads unless
  HF_HUB_OFFLINE is set);
- a single-file `.safetensors` in the original LTX-2 layout: transformer,
  video VAE and audio VAE through diffusers' `from_single_file`, the other
  components from `base_model_path` (a diffusers folder or hub id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ModelLoadError
from toolkit.models.tiny_ltx2 import TINY_NAMES, ensure_tiny_ltx2

from .checkpoint_configs import component_class as _indexed_class
from .checkpoint_configs import component_entry

# The components a LoRA run loads, in load order; model_index.json names each one's class.
COMPONENT_ORDER = ("tokenizer", "text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder", "scheduler")
SINGLE_FILE_COMPONENTS = {
    "transformer": "model.diffusion_model.",
    "vae": "vae.",
    "audio_vae": "audio_vae.",
}


@dataclass(frozen=True)
class CheckpointSource:
    """Resolved `model.name_or_path`: where each component is read from."""

    kind: str  # "diffusers" | "hub" | "single_file"
    location: str  # folder, hub id or .safetensors file
    base: str  # diffusers folder or hub id for everything not in a single file
    single_file_components: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"kind": self.kind, "location": self.location, "base": self.base}


def resolve_source(name_or_path: str, base_model_path: str | None = None) -> CheckpointSource:
    """Turn the config's `name_or_path` into a CheckpointSource, or say what is wrong with it."""
    if name_or_path in TINY_NAMES:
        folder = str(ensure_tiny_ltx2(version=TINY_NAMES[name_or_path]))
        return CheckpointSource("diffusers", folder, folder)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model.name_or_path: folder {path} has no model_index.json; point it at a diffusers LTX-2 folder "
                "(with transformer/, vae/, audio_vae/, text_encoder/ ... subfolders) or a single .safetensors file"
            )
        return CheckpointSource("diffusers", str(path), str(path))
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelLoadError(f"model.name_or_path: single-file checkpoint {path} does not exist")
        if not base_model_path:
            raise ModelLoadError(
                f"model.name_or_path is a single file ({path.name}); set model.base_model_path to a diffusers LTX-2 "
                "folder or hub id for the text encoder, tokenizer, connectors, vocoder and scheduler"
            )
        base = resolve_source(base_model_path).location
        return CheckpointSource("single_file", str(path), base, _components_in_single_file(path))
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"model.name_or_path: {name_or_path} is neither a diffusers folder nor a .safetensors file"
        )
    return CheckpointSource("hub", name_or_path, name_or_path)


def _components_in_single_file(path: Path) -> tuple[str, ...]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
    present = tuple(name for name, prefix in SINGLE_FILE_COMPONENTS.items() if any(k.startswith(prefix) for k in keys))
    if "transformer" not in present:
        raise ModelLoadError(
            f"{path}: no transformer weights (keys starting with 'model.diffusion_model.'); "
            "is this an LTX-2 single-file checkpoint?"
        )
    return present


def component_class(source: CheckpointSource, name: str):
    """The class that loads component `name`: the one the base folder's model_index.json names."""
    return _indexed_class(source.base, name)


def load_component(source: CheckpointSource, name: str, dtype):
    """Load one component at `dtype` (on the CPU); the caller places it.

    Any error while building it (a missing file, a config the class rejects, weights that do not fit the
    class) becomes a ModelLoadError naming the component, the class, the path and what to do.
    """
    cls = component_class(source, name)
    where = source.location if name in source.single_file_components else f"{source.base} ({name}/)"
    try:
        component = _load(cls, source, name, dtype)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - diffusers/transformers raise many types while building a component
        raise ModelLoadError(
            f"could not load the {name} ({cls.__name__}) from {where}: {type(error).__name__}: {error}; "
            f"{_load_advice(name)}"
        ) from error
    missing = _parameters_left_on_meta(component)
    if missing:
        raise ModelLoadError(
            f"could not load the {name} ({cls.__name__}) from {where}: {len(missing)} weights are missing from the "
            f"files (e.g. {', '.join(missing[:3])}), so the files hold a different model than {cls.__name__}; "
            f"{_load_advice(name)}"
        )
    return component


def _load(cls, source: CheckpointSource, name: str, dtype):
    if name in source.single_file_components:
        return _load_from_single_file(cls, source, name, dtype)
    if name in ("tokenizer", "scheduler"):
        return cls.from_pretrained(source.base, subfolder=name)
    library, _ = component_entry(source.base, name)
    if library == "transformers":
        return cls.from_pretrained(source.base, subfolder=name, dtype=dtype)
    return cls.from_pretrained(source.base, subfolder=name, torch_dtype=dtype)


def _load_advice(name: str) -> str:
    return (
        f"check that model_index.json names the class the {name}/ folder was saved with (LTX-2.3+ folders use "
        "LTX2VocoderWithBWE, LTX-2.5 a Gemma 4 text encoder) and that its files are complete, or re-download the "
        "checkpoint; run with --debug for the traceback"
    )


def _parameters_left_on_meta(component) -> list[str]:
    import torch

    if not isinstance(component, torch.nn.Module):
        return []
    tensors = list(component.named_parameters()) + list(component.named_buffers())
    return [key for key, tensor in tensors if tensor.is_meta]


def _load_from_single_file(cls, source: CheckpointSource, name: str, dtype):
    """One component of an original-layout file through diffusers' single-file loader.

    Only the component's own keys are read and handed over: the loader would
    otherwise read the whole file for each component and warn about every
    other component's keys as unused. AutoencoderKLLTX2Audio is in diffusers'
    single-file mapping but lacks the mixin, so the mixin's method is called
    on it directly.
    """
    from diffusers.loaders.single_file_model import FromOriginalModelMixin
    from safetensors import safe_open

    prefix = SINGLE_FILE_COMPONENTS[name]
    with safe_open(source.location, framework="pt") as handle:
        state_dict = {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}
    load = FromOriginalModelMixin.from_single_file.__func__
    return load(cls, state_dict, config=source.base, subfolder=name, torch_dtype=dtype)
