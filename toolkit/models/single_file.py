"""Write LTX-2 weights as one `.safetensors` in the original (Lightricks) key layout.

The published single-file checkpoint keeps the transformer under
`model.diffusion_model.`, the video VAE under `vae.` (original block indices,
`per_channel_statistics.*`) and the audio VAE under `audio_vae.`. diffusers
reads that layout through `from_single_file`, converting keys with
`convert_ltx2_transformer_to_diffusers`, `convert_ltx2_vae_to_diffusers` and
`convert_ltx2_audio_vae_to_diffusers` (loaders/single_file_utils.py). This
module is their inverse, so a diffusers folder (the tiny model, a merged
LoRA) can be handed to tools that expect the original file, and the
single-file loading path can be tested without the 40 GB download.

Every key mapping is checked against diffusers' own converters before the
file is written: if a diffusers upgrade changes the renames, saving fails
loudly instead of writing a file that loads with missing weights.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from toolkit.errors import CheckpointError

# Component -> the prefix its keys carry in the single file.
SINGLE_FILE_PREFIXES = {
    "transformer": "model.diffusion_model.",
    "vae": "vae.",
    "audio_vae": "audio_vae.",
}

# diffusers name -> original name, inverse of LTX_2_0_TRANSFORMER_KEYS_RENAME_DICT. Order matters:
# `audio_proj_in` before `proj_in`, which it contains.
_TRANSFORMER_RENAMES = (
    ("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
    ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
    ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
    ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
    ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
    ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
    ("norm_q", "q_norm"),
    ("norm_k", "k_norm"),
    ("audio_proj_in", "audio_patchify_proj"),
    ("proj_in", "patchify_proj"),
)
# Whole-prefix renames of the timestep embedders (the original names are substrings of other keys).
_TRANSFORMER_PREFIX_RENAMES = (
    ("audio_time_embed.", "audio_adaln_single."),
    ("time_embed.", "adaln_single."),
)
_LATENT_STATISTICS = (
    ("latents_mean", "per_channel_statistics.mean-of-means"),
    ("latents_std", "per_channel_statistics.std-of-means"),
)


def original_transformer_key(key: str) -> str:
    """A diffusers LTX2VideoTransformer3DModel key under its original name (without the prefix)."""
    for diffusers_prefix, original_prefix in _TRANSFORMER_PREFIX_RENAMES:
        if key.startswith(diffusers_prefix):
            key = original_prefix + key[len(diffusers_prefix) :]
            break
    for diffusers_name, original_name in _TRANSFORMER_RENAMES:
        key = key.replace(diffusers_name, original_name)
    return key


def original_vae_key(key: str, down_blocks: int) -> str:
    """A diffusers AutoencoderKLLTX2Video key under its original name (without the prefix).

    The original encoder numbers res-block groups and downsamplers in one
    sequence (`down_blocks.0` res blocks, `.1` its downsampler, ...) and ends
    with the mid block; the decoder starts with the mid block, then each
    upsampler followed by its res blocks.
    """
    rules: tuple[tuple[str, Callable[[re.Match], str]], ...] = (
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down_blocks.{2 * int(m[1]) + 1}."),
        (r"^encoder\.down_blocks\.(\d+)\.", lambda m: f"encoder.down_blocks.{2 * int(m[1])}."),
        (r"^encoder\.mid_block\.", lambda m: f"encoder.down_blocks.{2 * down_blocks}."),
        (r"^decoder\.mid_block\.", lambda m: "decoder.up_blocks.0."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up_blocks.{2 * int(m[1]) + 1}."),
        (r"^decoder\.up_blocks\.(\d+)\.", lambda m: f"decoder.up_blocks.{2 * int(m[1]) + 2}."),
    )
    for pattern, replacement in rules:
        key, count = re.subn(pattern, replacement, key)
        if count:
            break
    key = key.replace(".resnets.", ".res_blocks.")
    return _original_statistics_key(key)


def original_audio_vae_key(key: str) -> str:
    """A diffusers AutoencoderKLLTX2Audio key under its original name (without the prefix)."""
    return _original_statistics_key(key)


def _original_statistics_key(key: str) -> str:
    for diffusers_name, original_name in _LATENT_STATISTICS:
        if key == diffusers_name:
            return original_name
    return key


def original_keys(component: str, diffusers_keys: list[str]) -> dict[str, str]:
    """{original single-file key: diffusers key} for one component, verified against diffusers' converter."""
    if component == "transformer":
        rename = original_transformer_key
    elif component == "vae":
        indices = [int(m[1]) for k in diffusers_keys if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))]
        down_blocks = max(indices) + 1 if indices else 0
        rename = functools.partial(original_vae_key, down_blocks=down_blocks)
    elif component == "audio_vae":
        rename = original_audio_vae_key
    else:
        raise CheckpointError(
            f"single-file save: no original key layout for component {component!r}; "
            f"the single file holds {', '.join(SINGLE_FILE_PREFIXES)}"
        )
    prefix = SINGLE_FILE_PREFIXES[component]
    mapping = {prefix + rename(key): key for key in diffusers_keys}
    if len(mapping) != len(diffusers_keys):
        raise CheckpointError(f"single-file save: two {component} keys map to the same original key")
    _check_against_diffusers(component, mapping)
    return mapping


def _check_against_diffusers(component: str, mapping: dict[str, str]) -> None:
    """Run diffusers' converter over the original keys; it must give back every diffusers key."""
    from diffusers.loaders import single_file_utils

    converter = {
        "transformer": single_file_utils.convert_ltx2_transformer_to_diffusers,
        "vae": single_file_utils.convert_ltx2_vae_to_diffusers,
        "audio_vae": single_file_utils.convert_ltx2_audio_vae_to_diffusers,
    }[component]
    # The converters only rename keys; carrying the expected diffusers key as the value shows where each lands.
    converted = converter(dict(mapping))
    wrong = sorted(f"{value} -> {key}" for key, value in converted.items() if key != value)
    missing = sorted(set(mapping.values()) - set(converted.values()))
    if wrong or missing:
        raise CheckpointError(
            f"single-file save: the original key names of the {component} do not convert back to diffusers' names "
            f"with {converter.__name__} (first problems: {(wrong + missing)[:5]}); the installed diffusers changed "
            "its LTX-2 renames, update toolkit/models/single_file.py to match"
        )


def to_original_state_dict(state_dicts: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Merge diffusers-layout state dicts ({component: state dict}) into one original-layout state dict."""
    merged: dict[str, torch.Tensor] = {}
    for component, state_dict in state_dicts.items():
        for original_key, diffusers_key in original_keys(component, list(state_dict)).items():
            merged[original_key] = state_dict[diffusers_key]
    return merged


def save_single_file(folder_or_components: str | Path | Mapping, path: str | Path) -> Path:
    """Write the transformer, video VAE and audio VAE as one original-layout `.safetensors`.

    `folder_or_components` is a diffusers LTX-2 folder (model_index.json and
    a subfolder per component) or a mapping of component name to module, as
    `toolkit.models.tiny_ltx2.build_components` returns. Tensors keep their
    dtype. The file is written atomically.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"single-file save: {path} must end in .safetensors")
    if isinstance(folder_or_components, Mapping):
        state_dicts = _module_state_dicts(folder_or_components)
        source = "the given components"
    else:
        state_dicts = _folder_state_dicts(Path(folder_or_components))
        source = str(folder_or_components)
    merged = {key: tensor.detach().contiguous() for key, tensor in to_original_state_dict(state_dicts).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file(merged, str(temporary), metadata={"format": "pt", "source": source})
    temporary.replace(path)
    return path


def _module_state_dicts(components: Mapping) -> dict[str, dict[str, torch.Tensor]]:
    missing = [name for name in SINGLE_FILE_PREFIXES if components.get(name) is None]
    if missing:
        raise CheckpointError(
            f"single-file save: components {missing} are missing; pass all of {list(SINGLE_FILE_PREFIXES)}"
        )
    return {name: components[name].state_dict() for name in SINGLE_FILE_PREFIXES}


def _folder_state_dicts(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"single-file save: {folder} has no model_index.json; pass a diffusers LTX-2 folder "
            "(with transformer/, vae/ and audio_vae/ subfolders)"
        )
    state_dicts = {}
    for name in SINGLE_FILE_PREFIXES:
        # Sharded components have several files; one name never appears in two shards.
        files = sorted((folder / name).glob("diffusion_pytorch_model*.safetensors"))
        if not files:
            raise CheckpointError(
                f"single-file save: {folder / name} holds no diffusion_pytorch_model*.safetensors; "
                "save the model with safe_serialization=True"
            )
        state_dict: dict[str, torch.Tensor] = {}
        for file in files:
            state_dict.update(load_file(str(file)))
        state_dicts[name] = state_dict
    return state_dicts
