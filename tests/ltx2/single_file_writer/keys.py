"""The original single-file key of every diffusers key of each LTX-2 component: the writing half of
extensions_built_in/diffusion_models/ltx2/single_file/keys.py, which reads them (and names LoRA keys).

Every mapping is checked by reading it back with the product's readers before a file is written, so the
files the reader tests load are written in exactly the names the readers take.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from extensions_built_in.diffusion_models.ltx2.single_file.keys import (
    _CONNECTOR_PREFIX_RENAMES,
    _CONNECTOR_SEGMENTS,
    _VOCODER_DOWNSAMPLE,
    _VOCODER_SEGMENTS,
    SINGLE_FILE_COMPONENTS,
    TRANSFORMER_PREFIX,
    _rename_segments,
    _replace_prefix,
    component_of,
    original_transformer_key,
    to_diffusers_state_dict,
)
from toolkit.errors import CheckpointError

_LATENT_STATISTICS = (
    ("latents_mean", "per_channel_statistics.mean-of-means"),
    ("latents_std", "per_channel_statistics.std-of-means"),
)
def original_vae_key(key: str, down_blocks: int) -> str:
    """A diffusers AutoencoderKLLTX2Video key under its original name (without the prefix).

    The original encoder numbers res-block groups and downsamplers in one
    sequence (`down_blocks.0` res blocks, `.1` its downsampler, ...) and ends
    with the mid block; the decoder starts with the mid block, then each
    upsampler followed by its res blocks (a 2.3 decoder has four).
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


def original_connector_key(key: str) -> str:
    """A diffusers LTX2TextConnectors key under its full original name (prefix included)."""
    return _rename_segments(_replace_prefix(key, _CONNECTOR_PREFIX_RENAMES), _CONNECTOR_SEGMENTS)


def original_vocoder_key(key: str) -> str:
    """A diffusers LTX2Vocoder / LTX2VocoderWithBWE key under its original name (without the prefix)."""
    return _rename_segments(key, _VOCODER_SEGMENTS).replace(*_VOCODER_DOWNSAMPLE)


def _original_statistics_key(key: str) -> str:
    for diffusers_name, original_name in _LATENT_STATISTICS:
        if key == diffusers_name:
            return original_name
    return key


def original_keys(component: str, diffusers_keys: list[str]) -> dict[str, str]:
    """{original single-file key: diffusers key} for one component, checked by reading it back."""
    if component == "transformer":
        mapping = {TRANSFORMER_PREFIX + original_transformer_key(key): key for key in diffusers_keys}
    elif component == "vae":
        indices = [int(m[1]) for k in diffusers_keys if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))]
        down_blocks = max(indices) + 1 if indices else 0
        mapping = {"vae." + original_vae_key(key, down_blocks): key for key in diffusers_keys}
    elif component == "audio_vae":
        mapping = {"audio_vae." + original_audio_vae_key(key): key for key in diffusers_keys}
    elif component == "connectors":
        mapping = {original_connector_key(key): key for key in diffusers_keys}
    elif component == "vocoder":
        mapping = {"vocoder." + original_vocoder_key(key): key for key in diffusers_keys}
    else:
        raise CheckpointError(
            f"single-file save: no original key layout for component {component!r}; "
            f"the single file holds {', '.join(SINGLE_FILE_COMPONENTS)}"
        )
    if len(mapping) != len(diffusers_keys):
        raise CheckpointError(f"single-file save: two {component} keys map to the same original key")
    _check_read_back(component, mapping)
    return mapping


def _check_read_back(component: str, mapping: dict[str, str]) -> None:
    """Read the original keys back (diffusers' converter plus our gap fills); each must land on its diffusers key."""
    wrong_component = sorted(key for key in mapping if component_of(key) != component)
    # The readers only rename keys; carrying the expected diffusers key as the value shows where each lands.
    converted = to_diffusers_state_dict(component, dict(mapping))
    wrong = sorted(f"{value} -> {key}" for key, value in converted.items() if key != value)
    missing = sorted(set(mapping.values()) - set(converted.values()))
    if wrong_component or wrong or missing:
        raise CheckpointError(
            f"single-file save: the original key names of the {component} do not read back to diffusers' names "
            f"(first problems: {(wrong_component + wrong + missing)[:5]}); the installed diffusers changed its "
            "LTX-2 renames, update extensions_built_in/diffusion_models/ltx2/single_file/keys.py to match"
        )
