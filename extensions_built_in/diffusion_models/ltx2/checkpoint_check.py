"""`--dry-run`'s look at the checkpoint: its LTX-2 version, and whether every component can be built.

No weight is read. For each component the class model_index.json names is
built on the meta device from the component's config (a config the class
rejects, such as a Gemma 4 config under a Gemma 3 class, fails here), and,
for diffusers components of a local folder, the parameter names the class
expects are compared with the names in the safetensors headers (a 2.3 vocoder
under the 2.0 `LTX2Vocoder` class fails here). The dry run never downloads:
a hub id whose configs are not in the local hub cache is reported, and the
version `model.arch` names is planned.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import ToolkitError, ModelLoadError
from toolkit.safetensors_files import read_header

from .checkpoint import COMPONENT_ORDER, read_variant, resolve_source
from .checkpoint_configs import check_saved_classes, component_class, component_config_json, component_entry
from .variant import VERSION_BY_ARCH, check_arch, class_hint


def checkpoint_report(model_config) -> list[str]:
    """Lines for the dry run: the version (and why), each component's class; raises on a mismatch."""
    try:
        source = resolve_source(model_config.name_or_path, getattr(model_config, "base_model_path", None))
        variant = read_variant(source, local_only=True)
    except ModelLoadError:
        if not is_unreadable_hub_id(model_config.name_or_path):
            raise
        version = VERSION_BY_ARCH.get(model_config.arch, "2.0")
        return [
            f"LTX-2 version: {version} from model.arch ({model_config.arch}); {model_config.name_or_path}'s configs are "
            "not in the local hub cache (the dry run does not download)"
        ]
    check_arch(model_config.arch, variant, model_config.name_or_path)
    classes = check_saved_classes(source.base, COMPONENT_ORDER)
    for name in COMPONENT_ORDER:
        if name not in ("tokenizer", "scheduler") and name not in source.single_file_components:
            build_on_meta(source.base, name)
    lines = [f"LTX-2 version: {variant.summary()} (read from {source.location})"]
    lines.append("components: " + ", ".join(f"{name}={cls}" for name, cls in classes.items()))
    if variant.extra_components:
        lines.append("not loaded (unused by LoRA training): " + ", ".join(variant.extra_components))
    return lines


def is_unreadable_hub_id(name_or_path: str) -> bool:
    return not Path(name_or_path).expanduser().exists() and not name_or_path.startswith((".", "/", "~"))


def build_on_meta(base: str, name: str):
    """Component `name` built on the meta device from its config; ModelLoadError naming what does not fit."""
    from accelerate import init_empty_weights

    component_config_json(base, name, local_only=True)  # a missing folder is named as such, not as a class mix-up
    cls = component_class(base, name)
    library, _ = component_entry(base, name)
    where = f"{base} ({name}/)"
    try:
        with init_empty_weights():
            if library == "transformers":
                module = cls(cls.config_class.from_pretrained(base, subfolder=name))
            else:
                module = cls.from_config(cls.load_config(base, subfolder=name))
    except ToolkitError:
        raise
    except Exception as error:  # noqa: BLE001 - a rejected config surfaces as many exception types
        raise ModelLoadError(
            f"the {name} ({cls.__name__}) cannot be built from {where}: {type(error).__name__}: {error}; "
            f"model_index.json must name the class the component was saved with{class_hint(name)}"
        ) from error
    if library != "transformers":
        _check_weight_names(module, Path(base) / name, name, cls.__name__)
    return module


def _check_weight_names(module, folder: Path, name: str, class_name: str) -> None:
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return
    stored = set()
    for path in files:
        stored |= _safetensors_keys(path)
    expected = set(module.state_dict())
    missing = sorted(expected - stored)
    if missing:
        raise ModelLoadError(
            f"the {name} ({class_name}) in {folder}: {len(missing)} of its {len(expected)} weights are not in the "
            f"files (e.g. {', '.join(missing[:3])}); the files hold another model than {class_name} - set "
            f"model_index.json's '{name}' entry to the class they were saved with{class_hint(name)}"
        )


def _safetensors_keys(path: Path) -> set[str]:
    header, _ = read_header(path)
    return {key for key in header if key != "__metadata__"}


def planned_version(model_config) -> str:
    """The weights' LTX-2 version when their configs can be read here; otherwise the one `model.arch` names."""
    try:
        source = resolve_source(model_config.name_or_path, getattr(model_config, "base_model_path", None))
        return read_variant(source, local_only=True).version
    except ModelLoadError:
        return VERSION_BY_ARCH.get(model_config.arch, "2.0")
