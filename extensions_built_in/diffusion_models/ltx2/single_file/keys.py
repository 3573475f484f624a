"""Key names of LTX-2 components in the original (Lightricks) single-file layout, both ways.

A published LTX-2 `.safetensors` (2.0, 2.3, 2.5) holds, under these prefixes:

- transformer: `model.diffusion_model.*` (less the two connectors below)
- connectors: `text_embedding_projection.*` (2.0 `aggregate_embed`, 2.3+
  `video_aggregate_embed` / `audio_aggregate_embed`) and
  `model.diffusion_model.{video,audio}_embeddings_connector.*`
- video VAE: `vae.*`, audio VAE: `audio_vae.*`
- vocoder: `vocoder.*` (2.3+: `vocoder.vocoder.*`, `vocoder.bwe_generator.*`, `vocoder.mel_stft.*`)

Reading uses diffusers' own converters where diffusers has one
(`convert_ltx2_transformer_to_diffusers`, `convert_ltx2_vae_to_diffusers`,
`convert_ltx2_audio_vae_to_diffusers` in loaders/single_file_utils.py) and
fills the gaps diffusers 0.42.1 leaves, after its converter ran:
- the 2.3+ prompt modulation: `prompt_adaln_single.*` / `audio_prompt_adaln_single.*`
  -> `prompt_adaln.*` / `audio_prompt_adaln.*`;
- a video-VAE decoder with a fourth up-block (2.3+): original `up_blocks.7`
  (its upsampler) and `up_blocks.8` (its res blocks), which the converter's
  table (up to `up_blocks.6`) leaves as they are;
- connectors and vocoder, which diffusers' single-file loader does not cover:
  the renames of diffusers' own conversion script, applied per dotted name segment.

The inverse, for LoRA keys (`original_transformer_key`) is here too; the writer of whole single files
(every component's keys, checked by reading them back with the functions here) belongs to the tests
(tests/ltx2/single_file_writer/), which build the files the readers are tested on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import torch

from toolkit.errors import CheckpointError

TRANSFORMER_PREFIX = "model.diffusion_model."
CONNECTOR_PREFIXES = (
    "text_embedding_projection.",
    f"{TRANSFORMER_PREFIX}video_embeddings_connector.",
    f"{TRANSFORMER_PREFIX}audio_embeddings_connector.",
)
# Component -> the prefixes its keys carry in the single file; connectors come before the transformer,
# whose prefix contains theirs.
COMPONENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "connectors": CONNECTOR_PREFIXES,
    "transformer": (TRANSFORMER_PREFIX,),
    "vae": ("vae.",),
    "audio_vae": ("audio_vae.",),
    "vocoder": ("vocoder.",),
}
SINGLE_FILE_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")

# diffusers name -> original name, inverse of diffusers' LTX_2_0_TRANSFORMER_KEYS_RENAME_DICT. Order matters:
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
# 2.3+ prompt modulation: diffusers' converter leaves these original names as they are.
_PROMPT_ADALN_RENAMES = (
    ("audio_prompt_adaln.", "audio_prompt_adaln_single."),
    ("prompt_adaln.", "prompt_adaln_single."),
)
# Connectors: diffusers prefix -> original prefix, then name segments inside the connectors.
_CONNECTOR_PREFIX_RENAMES = (
    ("text_proj_in.", "text_embedding_projection.aggregate_embed."),
    ("video_text_proj_in.", "text_embedding_projection.video_aggregate_embed."),
    ("audio_text_proj_in.", "text_embedding_projection.audio_aggregate_embed."),
    ("video_connector.", f"{TRANSFORMER_PREFIX}video_embeddings_connector."),
    ("audio_connector.", f"{TRANSFORMER_PREFIX}audio_embeddings_connector."),
)
_CONNECTOR_SEGMENTS = {"transformer_blocks": "transformer_1d_blocks", "norm_q": "q_norm", "norm_k": "k_norm"}
# Vocoder (LTX2Vocoder and both halves of LTX2VocoderWithBWE): name segments, and the anti-aliasing
# low-pass filter that ltx-core keeps one module deeper.
_VOCODER_SEGMENTS = {
    "conv_in": "conv_pre",
    "upsamplers": "ups",
    "resnets": "resblocks",
    "conv_out": "conv_post",
    "act_out": "act_post",
}
_VOCODER_DOWNSAMPLE = (".downsample.filter", ".downsample.lowpass.filter")


def component_of(original_key: str) -> str | None:
    """Which component an original single-file key belongs to (None: not an LTX-2 component key)."""
    for component, prefixes in COMPONENT_PREFIXES.items():
        if original_key.startswith(prefixes):
            return component
    return None


def split_keys(original_keys: Iterable[str]) -> dict[str, list[str]]:
    """{component: its original keys} for the components present."""
    split: dict[str, list[str]] = {}
    for key in original_keys:
        component = component_of(key)
        if component is not None:
            split.setdefault(component, []).append(key)
    return split


# ---- reading: original -> diffusers ----


def to_diffusers_state_dict(component: str, original: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One component's original-layout tensors (full single-file keys) under diffusers' names."""
    readers: dict[str, Callable[[dict], dict]] = {
        "transformer": _read_transformer,
        "vae": _read_vae,
        "audio_vae": _read_audio_vae,
        "connectors": _read_connectors,
        "vocoder": _read_vocoder,
    }
    if component not in readers:
        raise CheckpointError(f"single file: no key layout for component {component!r}")
    return readers[component](dict(original))


def _read_transformer(state: dict) -> dict:
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers

    converted = convert_ltx2_transformer_to_diffusers(state)
    return {_replace_prefix(key, _PROMPT_ADALN_RENAMES, reverse=True): value for key, value in converted.items()}


def _read_vae(state: dict) -> dict:
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers

    converted = convert_ltx2_vae_to_diffusers(state)
    return {_fourth_up_block(key): value for key, value in converted.items()}


def _fourth_up_block(key: str) -> str:
    """Original decoder `up_blocks.N` past diffusers' table (N >= 7): odd N an upsampler, even N res blocks."""
    match = re.match(r"^decoder\.up_blocks\.(\d+)\.", key)
    if not match or int(match[1]) < 7:
        return key
    index = int(match[1])
    if index % 2:
        return f"decoder.up_blocks.{(index - 1) // 2}.upsamplers.0." + key[match.end() :]
    return f"decoder.up_blocks.{(index - 2) // 2}." + key[match.end() :]


def _read_audio_vae(state: dict) -> dict:
    from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers

    return convert_ltx2_audio_vae_to_diffusers(state)


def _read_connectors(state: dict) -> dict:
    converted = {}
    for key, value in state.items():
        key = _replace_prefix(key, _CONNECTOR_PREFIX_RENAMES, reverse=True)
        converted[_rename_segments(key, _CONNECTOR_SEGMENTS, reverse=True)] = value
    return converted


def _read_vocoder(state: dict) -> dict:
    converted = {}
    for key, value in state.items():
        key = key.removeprefix("vocoder.").replace(_VOCODER_DOWNSAMPLE[1], _VOCODER_DOWNSAMPLE[0])
        converted[_rename_segments(key, _VOCODER_SEGMENTS, reverse=True)] = value
    return converted


# ---- writing LoRA keys: diffusers -> original ----


def original_transformer_key(key: str) -> str:
    """A diffusers LTX2VideoTransformer3DModel key under its original name (without the prefix)."""
    for diffusers_prefix, original_prefix in _TRANSFORMER_PREFIX_RENAMES + _PROMPT_ADALN_RENAMES:
        if key.startswith(diffusers_prefix):
            key = original_prefix + key[len(diffusers_prefix) :]
            break
    for diffusers_name, original_name in _TRANSFORMER_RENAMES:
        key = key.replace(diffusers_name, original_name)
    return key


# ---- helpers ----


def _replace_prefix(key: str, renames: tuple[tuple[str, str], ...], reverse: bool = False) -> str:
    """Swap the first matching prefix; `renames` is (diffusers, original), `reverse` reads original -> diffusers."""
    pairs = [(b, a) for a, b in renames] if reverse else list(renames)
    # Longest prefix first, so `video_text_proj_in.` is not taken for `text_proj_in.`.
    for source, target in sorted(pairs, key=lambda pair: -len(pair[0])):
        if key.startswith(source):
            return target + key[len(source) :]
    return key


def _rename_segments(key: str, renames: Mapping[str, str], reverse: bool = False) -> str:
    table = {v: k for k, v in renames.items()} if reverse else renames
    return ".".join(table.get(segment, segment) for segment in key.split("."))
