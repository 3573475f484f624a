"""The LTX2Variant of a single-file checkpoint: the file decides what it holds, the base folder the rest.

The flags come from the configs the loader will build the file's components
with (single_file_loading.component_config: the header's `config`, else the
base folder, then the tensor shapes) and the classes from the file (the
vocoder's follows its tensors) and from the base folder's model_index.json
for the text encoder. The version the header states (`model_version`, the
`config` flags, or the tensor names: single_file/header.py) must agree, and
so must the base folder's text encoder (Gemma 4 exactly for 2.5), or loading
stops here with an error naming the file, the base folder and what to set.
"""

from __future__ import annotations

from toolkit.errors import ModelLoadError

from .checkpoint_configs import read_json, read_model_index, variant_of_folder
from .single_file_loading import component_class, component_config
from .variant import LTX2Variant, variant_from_configs


def variant_of_single_file(source) -> LTX2Variant:
    """The variant of a resolved single-file CheckpointSource (see the module docstring)."""
    header = source.single_file_header
    model_index = dict(read_model_index(source.base))
    configs = {}
    for name in ("transformer", "connectors"):
        if name in source.single_file_components:
            cls = component_class(header, name)
            configs[name] = component_config(header, name, cls, source.base)
        else:
            configs[name] = read_json(source.base, f"{name}/config.json", required=name == "transformer")
    for name in source.single_file_components:
        library = "ltx2" if name in ("connectors", "vocoder") else "diffusers"
        model_index[name] = [library, component_class(header, name).__name__]
    text_encoder = read_json(source.base, "text_encoder/config.json", required=False)
    variant = variant_from_configs(model_index, configs["transformer"], configs["connectors"], text_encoder)
    _check_agreement(source, header, variant)
    return variant


def _check_agreement(source, header, variant: LTX2Variant) -> None:
    stated = header.version
    gemma4 = variant.flags.get("gemma4_text_encoder", False)
    if (stated == "2.5") != gemma4:
        wanted = "a Gemma 4 text encoder (LTX-2.5)" if stated == "2.5" else "a Gemma 3 text encoder (LTX-2.0/2.3)"
        raise ModelLoadError(
            f"model.name_or_path {source.location} is LTX-{stated} (from its {header.version_source}), which needs "
            f"{wanted}, but model.base_model_path {source.base} has "
            f"{variant.classes.get('text_encoder', 'another text encoder')}; "
            f"point base_model_path at a diffusers folder of LTX-{stated} for the text encoder, tokenizer and scheduler"
        )
    # Without a config in the file its components are built with the base folder's configs: same version needed.
    configs_from_base = not header.diffusers_configs and not header.ltx_config.get("transformer")
    if variant.version != stated or (configs_from_base and variant_of_folder(source.base).version != stated):
        raise ModelLoadError(
            f"model.name_or_path {source.location}: its {header.version_source} say LTX-{stated}, but the configs "
            f"its components would be built with describe {variant_of_folder(source.base).summary()} (the file has "
            f"no `config` header, so they come from model.base_model_path {source.base}); point base_model_path at "
            f"a diffusers folder of LTX-{stated}, or re-export the file with its config"
        )
