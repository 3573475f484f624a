"""Where an LTX-2 checkpoint's components come from, and loading each one.

Three sources, one loader:
- a diffusers folder (model_index.json plus a subfolder per component),
  which is also what `tiny-ltx2` builds into its cache;
- a hub id: its snapshot in the local Hugging Face cache, read as a diffusers
  folder (toolkit/hub_snapshot.py); a load downloads the files the
  cache lacks first (unless HF_HUB_OFFLINE is set), a dry run never does;
- a single-file `.safetensors` in the original LTX-2 layout (2.0, 2.3, 2.5):
  every component it holds (transformer, connectors, video and audio VAE,
  vocoder) is read from it with the configs its header states
  (single_file_loading.py); the rest (text encoder, tokenizer, scheduler, and
  any component the file lacks) from `base_model_path` (a diffusers folder or hub id).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import CheckpointError, ModelLoadError
from extensions_built_in.diffusion_models.ltx2.single_file.header import SingleFileHeader, read_header
from extensions_built_in.diffusion_models.ltx2.single_file.keys import SINGLE_FILE_COMPONENTS
from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_NAMES, ensure_tiny_ltx2

from .checkpoint_configs import component_class as _indexed_class
from .checkpoint_configs import component_entry, variant_of_folder
from .single_file_loading import component_class as _single_file_class
from .single_file_loading import load_single_file_component
from .single_file_variant import variant_of_single_file
from .variant import LTX2Variant, class_hint

# The components a LoRA run loads, in load order; model_index.json (or a single file) names each one's class.
COMPONENT_ORDER = ("tokenizer", "text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder", "scheduler")


@dataclass(frozen=True)
class CheckpointSource:
    """Resolved `model.name_or_path`: where each component is read from."""

    kind: str  # "diffusers" | "hub" | "single_file"
    location: str  # folder, hub id or .safetensors file
    base: str  # diffusers folder (a hub id's cached snapshot) or a hub id the cache lacks: all a single file lacks
    single_file_components: tuple[str, ...] = ()
    single_file_header: SingleFileHeader | None = None

    def describe(self) -> dict:
        described = {"kind": self.kind, "location": self.location, "base": self.base}
        if self.single_file_header is not None:
            described["single_file"] = {
                "components": list(self.single_file_components),
                "version": self.single_file_header.version,
                "version_from": self.single_file_header.version_source,
            }
        return described


def resolve_source(name_or_path: str, base_model_path: str | None = None, fetch: bool = False) -> CheckpointSource:
    """Turn the config's `name_or_path` into a CheckpointSource, or say what is wrong with it.

    A hub id reads from its snapshot in the local Hugging Face cache when that holds every file the run reads;
    `fetch` (a load) downloads what it lacks first, otherwise (a dry run, a plan) `base` stays the hub id and
    only what the cache holds is read.
    """
    return _resolve(name_or_path, base_model_path, fetch, COMPONENT_ORDER)


def _resolve(name_or_path: str, base_model_path: str | None, fetch: bool, components) -> CheckpointSource:
    """resolve_source, a hub id's snapshot holding `components` (a single file's base: those the file lacks)."""
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
        header = _single_file_header(path)
        if not base_model_path:
            raise ModelLoadError(
                f"model.name_or_path is a single file ({path.name}, LTX-{header.version}, holding "
                f"{', '.join(_held(header))}); set model.base_model_path to a diffusers LTX-2 folder or hub id for "
                "the text encoder, tokenizer and scheduler, which a single file does not hold"
            )
        held = _held(header)
        base = _resolve(base_model_path, None, fetch, [name for name in COMPONENT_ORDER if name not in held]).base
        return CheckpointSource("single_file", str(path), base, held, header)
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"model.name_or_path: {name_or_path} is neither a diffusers folder nor a .safetensors file"
        )
    return CheckpointSource("hub", name_or_path, _hub_folder(name_or_path, fetch, components))


def _hub_folder(repo_id: str, fetch: bool, components) -> str:
    """The hub id's cached snapshot (downloaded first when `fetch`), or the hub id when the cache lacks files."""
    from toolkit.hub_snapshot import fetch_snapshot, local_snapshot

    folder = fetch_snapshot(repo_id, components) if fetch else local_snapshot(repo_id, components)
    return repo_id if folder is None else str(folder)


def _single_file_header(path: Path) -> SingleFileHeader:
    try:
        header = read_header(path)
        held = header.components
        if "transformer" not in held:
            raise ModelLoadError(
                f"{path}: no transformer weights (keys starting with 'model.diffusion_model.'); "
                "is this an LTX-2 single-file checkpoint?"
            )
        _ = (header.ltx_config, header.diffusers_configs)  # a broken header fails here, before anything loads
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from error
    return header


def _held(header: SingleFileHeader) -> tuple[str, ...]:
    """The components the file holds, in the order they are loaded."""
    held = header.components
    return tuple(name for name in COMPONENT_ORDER if name in SINGLE_FILE_COMPONENTS and name in held)


def component_class(source: CheckpointSource, name: str):
    """The class that loads component `name`: the single file's for what it holds, else the one the base
    folder's model_index.json names."""
    if name in source.single_file_components:
        return _single_file_class(source.single_file_header, name)
    return _indexed_class(source.base, name)


def read_variant(source: CheckpointSource, local_only: bool = False) -> LTX2Variant:
    """The LTX-2 version of a resolved CheckpointSource.

    A diffusers folder or hub id: from its configs. A single file: from what the file holds (its header's
    config and model_version, else its tensor names), the base folder for the rest; see single_file_variant.py.
    """
    if source.kind == "single_file":
        return variant_of_single_file(source)
    return variant_of_folder(source.base, local_only)


def load_component(source: CheckpointSource, name: str, dtype):
    """Load one component at `dtype` (on the CPU); the caller places it.

    Any error while building it (a missing file, a config the class rejects, weights that do not fit the
    class) becomes a ModelLoadError naming the component, the class, the path and what to do.
    """
    cls = component_class(source, name)
    with loading_errors(source, name):
        component = _load(cls, source, name, dtype)
    check_all_loaded(source, name, component)
    return component


@contextlib.contextmanager
def loading_errors(source: CheckpointSource, name: str):
    """Turn an error while building component `name` into a ModelLoadError naming it, its class and path."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - diffusers/transformers raise many types while building a component
        cls = component_class(source, name)
        raise ModelLoadError(
            f"could not load the {name} ({cls.__name__}) from {_where(source, name)}: {type(error).__name__}: "
            f"{error}; {_load_advice(name)}"
        ) from error


def check_all_loaded(source: CheckpointSource, name: str, component) -> None:
    """A ModelLoadError when weights of `component` were left on the meta device (the files lack them)."""
    missing = _parameters_left_on_meta(component)
    if missing:
        cls = type(component)
        raise ModelLoadError(
            f"could not load the {name} ({cls.__name__}) from {_where(source, name)}: {len(missing)} weights are "
            f"missing from the files (e.g. {', '.join(missing[:3])}), so the files hold a different model than "
            f"{cls.__name__}; {_load_advice(name)}"
        )


def _where(source: CheckpointSource, name: str) -> str:
    return source.location if name in source.single_file_components else f"{source.base} ({name}/)"


def _load(cls, source: CheckpointSource, name: str, dtype):
    if name in source.single_file_components:
        return load_single_file_component(source.single_file_header, name, dtype, source.base)
    if name in ("tokenizer", "scheduler"):
        return cls.from_pretrained(source.base, subfolder=name)
    library, _ = component_entry(source.base, name)
    if library == "transformers":
        return cls.from_pretrained(source.base, subfolder=name, dtype=dtype)
    return cls.from_pretrained(source.base, subfolder=name, torch_dtype=dtype)


def _load_advice(name: str) -> str:
    return (
        f"check that model_index.json names the class the {name}/ folder was saved with{class_hint(name)} and that "
        f"its files are complete, or re-download the checkpoint; run with --debug for the traceback"
    )


def _parameters_left_on_meta(component) -> list[str]:
    import torch

    if not isinstance(component, torch.nn.Module):
        return []
    tensors = list(component.named_parameters()) + list(component.named_buffers())
    return [key for key, tensor in tensors if tensor.is_meta]
