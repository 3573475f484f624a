"""Write LTX-2 (2.0, 2.3, 2.5) weights as one `.safetensors` in the original (Lightricks) layout.

The file holds what a published LTX-2 single file holds: the transformer
(`model.diffusion_model.`), the text connectors (`text_embedding_projection.`
and `model.diffusion_model.*_embeddings_connector.`), the video VAE (`vae.`),
the audio VAE (`audio_vae.`) and the vocoder (`vocoder.`), under the original
key names (keys.py), and a header with:
- `config`: the components' configs in the field names Lightricks' ltx-core
  and ComfyUI read (config.py);
- `model_version`: "2.0.0", "2.3.0" or "2.5.0";
- `diffusers`: each component's exact diffusers config, so this project
  rebuilds the same classes when it reads the file back.

The tests write the tiny models so, to test the single-file loading path without the 40 GB download, and
build every component of the files with Lightricks' ltx-core (tests/ltx2/test_ltx2_single_file_readers.py).
It lives with the tests: the trainer writes LoRAs, never base checkpoints, and the published single files
are what users load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from extensions_built_in.diffusion_models.ltx2.single_file.keys import SINGLE_FILE_COMPONENTS
from toolkit.atomic_write import atomic_write
from toolkit.errors import CheckpointError

from .config import to_ltx_config
from .keys import original_keys

REQUIRED_COMPONENTS = ("transformer", "vae", "audio_vae")


def to_original_state_dict(state_dicts: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Merge diffusers-layout state dicts ({component: state dict}) into one original-layout state dict."""
    merged: dict[str, torch.Tensor] = {}
    for component, state_dict in state_dicts.items():
        for original_key, diffusers_key in original_keys(component, list(state_dict)).items():
            merged[original_key] = state_dict[diffusers_key]
    return merged


def single_file_metadata(configs: Mapping[str, Mapping], source: str) -> dict[str, str]:
    """The header entries for components with these diffusers configs ({component: config with _class_name})."""
    plain = {name: _json_ready(dict(config)) for name, config in configs.items()}
    return {
        "format": "pt",
        "config": json.dumps(to_ltx_config(plain)),
        # "2.3.0", not "2.3": ltx-core parses every entry that is valid JSON, and keeps this one a string.
        "model_version": f"{version_from_diffusers_configs(plain)}.0",
        "diffusers": json.dumps(plain),
        "source": source,
    }


def save_single_file(folder_or_components: str | Path | Mapping, path: str | Path) -> Path:
    """Write the LTX-2 components as one original-layout `.safetensors` with its `config` header.

    `folder_or_components` is a diffusers LTX-2 folder (model_index.json and
    a subfolder per component) or a mapping of component name to module, as
    `extensions_built_in.diffusion_models.ltx2.tiny.model.build_components` returns. The transformer and
    both VAEs are required; connectors and vocoder are written when present.
    Tensors keep their dtype. The file is written atomically.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"single-file save: {path} must end in .safetensors")
    if isinstance(folder_or_components, Mapping):
        state_dicts, configs = _module_state_dicts(folder_or_components)
        source = "the given components"
    else:
        state_dicts, configs = _folder_state_dicts(Path(folder_or_components))
        source = str(folder_or_components)
    merged = {key: tensor.detach().contiguous() for key, tensor in to_original_state_dict(state_dicts).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        save_file(merged, str(temporary), metadata=single_file_metadata(configs, source))
    return path


def _module_state_dicts(components: Mapping) -> tuple[dict, dict]:
    missing = [name for name in REQUIRED_COMPONENTS if components.get(name) is None]
    if missing:
        raise CheckpointError(
            f"single-file save: components {missing} are missing; pass at least {list(REQUIRED_COMPONENTS)} "
            f"(and {', '.join(n for n in SINGLE_FILE_COMPONENTS if n not in REQUIRED_COMPONENTS)} "
            "when the model has them)"
        )
    present = [name for name in SINGLE_FILE_COMPONENTS if components.get(name) is not None]
    state_dicts = {name: components[name].state_dict() for name in present}
    configs = {name: {"_class_name": type(components[name]).__name__, **components[name].config} for name in present}
    return state_dicts, configs


def _folder_state_dicts(folder: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"single-file save: {folder} has no model_index.json; pass a diffusers LTX-2 folder "
            "(with transformer/, vae/ and audio_vae/ subfolders)"
        )
    state_dicts, configs = {}, {}
    for name in SINGLE_FILE_COMPONENTS:
        # Sharded components have several files; one name never appears in two shards.
        files = sorted((folder / name).glob("diffusion_pytorch_model*.safetensors"))
        if not files and name not in REQUIRED_COMPONENTS and not (folder / name).exists():
            continue
        if not files:
            raise CheckpointError(
                f"single-file save: {folder / name} holds no diffusion_pytorch_model*.safetensors; "
                "save the model with safe_serialization=True"
            )
        state_dict: dict[str, torch.Tensor] = {}
        for file in files:
            state_dict.update(load_file(str(file)))
        state_dicts[name] = state_dict
        configs[name] = json.loads((folder / name / "config.json").read_text())
    return state_dicts, configs


def _json_ready(config: dict) -> dict:
    """A diffusers config as plain JSON values (tuples as lists), without diffusers' bookkeeping entries."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in config.items()
        if not key.startswith("_") or key == "_class_name"
    }


def version_from_diffusers_configs(configs: dict) -> str:
    """The version a set of diffusers component configs describes (what the writer records)."""
    transformer = configs.get("transformer", {})
    if transformer.get("use_keyframes_abs_pos_embedding") or transformer.get("ff_bias") is False:
        return "2.5"
    caption_in_connectors = transformer.get("use_prompt_embeddings") is False
    if transformer.get("gated_attn") or transformer.get("cross_attn_mod") or caption_in_connectors:
        return "2.3"
    if configs.get("vocoder", {}).get("_class_name") == "LTX2VocoderWithBWE":
        return "2.3"
    return "2.0"
