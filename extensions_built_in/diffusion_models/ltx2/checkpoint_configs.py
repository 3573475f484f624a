"""A checkpoint's configs (model_index.json, each component's config.json) and the classes they name.

Every component class comes from model_index.json, as diffusers' own
pipeline loader does it: `[library, class name]`, where the library is
`diffusers`, `transformers` or a diffusers pipeline module (`ltx2`, for the
connectors and the vocoder). Nothing is hard-coded per version: an LTX-2.3
folder names `LTX2VocoderWithBWE`, an LTX-2.5 folder a Gemma 4 text encoder.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from toolkit.errors import ModelLoadError

from .variant import LTX2Variant, variant_from_configs

CONFIG_FILES = {
    "transformer": "transformer/config.json",
    "connectors": "connectors/config.json",
    "text_encoder": "text_encoder/config.json",
}


def read_json(base: str, relative: str, required: bool = True) -> dict | None:
    """`relative` (e.g. 'transformer/config.json') of a diffusers folder or hub id, parsed."""
    path = _locate(base, relative, required)
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: cannot read it as JSON ({error}); re-download or re-save the checkpoint") from error


def _locate(base: str, relative: str, required: bool) -> str | None:
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

    try:
        return hf_hub_download(base, relative)
    except Exception as error:  # hub errors come in many types (offline, gated, missing file)
        if not required:
            return None
        raise ModelLoadError(
            f"hub id {base}: could not fetch {relative} ({type(error).__name__}: {error}); check the id, log in with "
            "`huggingface-cli login` for gated repos, or point model.name_or_path at a downloaded folder"
        ) from error


def read_model_index(base: str) -> dict:
    index = read_json(base, "model_index.json")
    if not isinstance(index, dict):
        raise ModelLoadError(f"{base}/model_index.json is not a JSON object; re-save the checkpoint with diffusers")
    return index


def variant_of_folder(base: str) -> LTX2Variant:
    """The LTX-2 version of a diffusers folder or hub id, from its configs (no weights read)."""
    configs = {name: read_json(base, relative, required=name == "transformer") for name, relative in CONFIG_FILES.items()}
    return variant_from_configs(read_model_index(base), configs["transformer"], configs["connectors"], configs["text_encoder"])


def component_entry(base: str, name: str) -> tuple[str, str]:
    """(library, class name) of component `name` as the folder's model_index.json lists it."""
    index = read_model_index(base)
    entry = index.get(name)
    if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not entry[0] or not entry[1]:
        raise ModelLoadError(
            f"{base}/model_index.json lists no class for the {name} (entry: {entry!r}); an LTX-2 folder needs "
            f"'{name}': [library, class]; re-save the pipeline with diffusers' save_pretrained"
        )
    return str(entry[0]), str(entry[1])


def component_class(base: str, name: str):
    """The class model_index.json names for component `name` (imported lazily: these imports are heavy)."""
    library, class_name = component_entry(base, name)
    module_names = {"diffusers": "diffusers", "transformers": "transformers"}
    module_name = module_names.get(library, f"diffusers.pipelines.{library}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as error:
        raise ModelLoadError(
            f"the {name} of {base}: model_index.json names class {class_name} from {library!r}, which the installed "
            f"diffusers/transformers do not have ({error}); upgrade them to the versions in requirements.txt or "
            "re-save the checkpoint with those"
        ) from error


def unused_components(base: str, loaded: tuple[str, ...]) -> dict[str, str]:
    """Components model_index.json lists that a LoRA run does not load: name -> class name."""
    index = read_model_index(base)
    return {
        name: str(entry[1])
        for name, entry in index.items()
        if not name.startswith("_")
        and name not in loaded
        and isinstance(entry, (list, tuple))
        and len(entry) == 2
        and entry[1]
    }


def read_variant(source) -> LTX2Variant:
    """The LTX-2 version of a resolved CheckpointSource.

    A diffusers folder or hub id: from its configs. A single file: from what the file holds (its header's
    config and model_version, else its tensor names), the base folder for the rest; see single_file_variant.py.
    """
    if source.kind == "single_file":
        from .single_file_variant import variant_of_single_file

        return variant_of_single_file(source)
    return variant_of_folder(source.base)
