"""A checkpoint's configs (model_index.json, each component's config.json) and the classes they name.

Every component class comes from model_index.json, as diffusers' own
pipeline loader does it: `[library, class name]`, where the library is
`diffusers`, `transformers` or a diffusers pipeline module (`ltx2`, for the
connectors and the vocoder). Nothing is hard-coded per version: an LTX-2.3
folder names `LTX2VocoderWithBWE`, an LTX-2.5 folder a Gemma 4 text encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.errors import ModelLoadError
from toolkit.models.model_index import UnknownComponentClass, index_entry, listed_components, resolve_class

from .variant import LTX2Variant, variant_from_configs

CONFIG_FILES = {
    "transformer": "transformer/config.json",
    "connectors": "connectors/config.json",
    "text_encoder": "text_encoder/config.json",
}


def read_json(base: str, relative: str, required: bool = True, local_only: bool = False) -> dict | None:
    """`relative` (e.g. 'transformer/config.json') of a diffusers folder or hub id, parsed."""
    path = _locate(base, relative, required, local_only)
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: cannot read it as JSON ({error}); re-download or re-save the checkpoint") from error


def _locate(base: str, relative: str, required: bool, local_only: bool) -> str | None:
    folder = Path(base).expanduser()
    if folder.is_dir():
        path = folder / relative
        if path.is_file():
            return str(path)
        if required:
            raise ModelLoadError(
                f"{path} is missing; model.name_or_path must be a complete diffusers LTX-2 folder "
                "(model_index.json plus a folder per component)"
            )
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from toolkit.hub_snapshot import cached_file

    try:
        if local_only:
            cached = cached_file(base, relative)
            if cached is None:
                raise LocalEntryNotFoundError(f"{base}/{relative} is not in the local Hugging Face cache")
            return cached
        return hf_hub_download(base, relative)
    except Exception as error:  # hub errors come in many types (offline, gated, missing file)
        if not required:
            return None
        raise ModelLoadError(
            f"hub id {base}: could not fetch {relative} ({type(error).__name__}: {error}); check the id, log in with "
            "`huggingface-cli login` for gated repos, or point model.name_or_path at a downloaded folder"
        ) from error


def read_model_index(base: str, local_only: bool = False) -> dict:
    index = read_json(base, "model_index.json", local_only=local_only)
    if not isinstance(index, dict):
        raise ModelLoadError(f"{base}/model_index.json is not a JSON object; re-save the checkpoint with diffusers")
    return index


def variant_of_folder(base: str, local_only: bool = False) -> LTX2Variant:
    """The LTX-2 version of a diffusers folder or hub id, from its configs (no weights read)."""
    configs = {
        name: read_json(base, relative, required=name == "transformer", local_only=local_only)
        for name, relative in CONFIG_FILES.items()
    }
    index = read_model_index(base, local_only)
    return variant_from_configs(index, configs["transformer"], configs["connectors"], configs["text_encoder"])


def component_entry(base: str, name: str, local_only: bool = False) -> tuple[str, str]:
    """(library, class name) of component `name` as the folder's model_index.json lists it (`local_only`: a hub id's
    from the local hub cache only, never fetched)."""
    try:
        return index_entry(read_model_index(base, local_only), name)
    except UnknownComponentClass as error:
        raise ModelLoadError(
            f"{base}: {error}; an LTX-2 folder needs '{name}': [library, class]; re-save the pipeline with "
            "diffusers' save_pretrained"
        ) from error


def component_config_json(base: str, name: str, local_only: bool = False) -> dict:
    """Component `name`'s config.json; when a local folder lacks it, a ModelLoadError that names the component."""
    relative = f"{name}/config.json"
    folder = Path(base).expanduser()
    if folder.is_dir() and not (folder / relative).is_file():
        _, class_name = component_entry(base, name)
        raise ModelLoadError(
            f"{folder / name} has no config.json, but {folder / 'model_index.json'} lists the {name} ({class_name}): "
            f"the {name}/ folder is missing or incomplete; copy {name}/ from the same LTX-2 release as transformer/, "
            "or point model.name_or_path at a complete folder"
        )
    return read_json(base, relative, local_only=local_only) or {}


def component_class(base: str, name: str):
    """The class model_index.json names for component `name` (imported lazily: these imports are heavy)."""
    library, class_name = component_entry(base, name)
    try:
        return resolve_class(library, class_name)
    except UnknownComponentClass as error:
        raise ModelLoadError(
            f"the {name} of {base}: {error}; install the diffusers/transformers versions in requirements.txt or "
            "re-save the checkpoint with those"
        ) from error


def unused_components(base: str, loaded: tuple[str, ...]) -> dict[str, str]:
    """Components model_index.json lists that a LoRA run does not load: name -> class name."""
    return {name: entry[1] for name, entry in listed_components(read_model_index(base)).items() if name not in loaded}


def check_saved_classes(base: str, names: tuple[str, ...]) -> dict[str, str]:
    """Each component's class as model_index.json names it, checked against the class its config.json was saved
    from (`_class_name` for diffusers, `architectures` for transformers); a mismatch fails before any weight is
    read. Returns name -> class name."""
    classes = {}
    for name in names:
        library, class_name = component_entry(base, name)
        classes[name] = class_name
        if name in ("tokenizer", "scheduler"):
            continue
        saved = read_json(base, f"{name}/config.json", required=False) or {}
        saved_class = saved.get("_class_name") or (saved.get("architectures") or [None])[0]
        if saved_class and saved_class != class_name:
            raise ModelLoadError(
                f"the {name} of {base}: model_index.json names {class_name} ({library}) but {name}/config.json was "
                f"saved from {saved_class}; set '{name}' in model_index.json to the class the weights were saved "
                f"with, or re-save the checkpoint with diffusers"
            )
    return classes
