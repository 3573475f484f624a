"""LoRA files: the diffusers format and the original LTX-2 / ComfyUI format.

Both hold the same tensors. diffusers keys are ``transformer.<module>.lora_A.weight``
under diffusers' module names; the original format is
``diffusion_model.<module>.lora_A.weight`` under the original LTX-2 names.
`LTX2Pipeline.load_lora_weights` reads both. Files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMATS = ("diffusers", "comfy")
DIFFUSERS_PREFIX = "transformer."
ORIGINAL_PREFIX = "diffusion_model."

# diffusers name -> original LTX-2 name (the inverse of diffusers' converter for LTX-2 LoRAs).
_TO_ORIGINAL = (
    ("audio_proj_in", "audio_patchify_proj"),
    ("proj_in", "patchify_proj"),
    ("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
    ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
    ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
    ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
    ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
    ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
    ("norm_q", "q_norm"),
    ("norm_k", "k_norm"),
)


def to_original_name(diffusers_name: str) -> str:
    name = diffusers_name
    if name.startswith("time_embed."):
        name = "adaln_single." + name.removeprefix("time_embed.")
    elif name.startswith("audio_time_embed."):
        name = "audio_adaln_single." + name.removeprefix("audio_time_embed.")
    for new, old in _TO_ORIGINAL:
        if name.startswith(new) or f".{new}" in name:
            name = name.replace(new, old, 1)
            break
    return name


def lora_file_tensors(peft_state: dict[str, torch.Tensor], fmt: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tensors a LoRA file of format `fmt` holds, from peft's state dict."""
    if fmt not in FORMATS:
        raise ValueError(f"save.format: {fmt!r} is not one of {FORMATS}")
    tensors = {}
    for name, tensor in peft_state.items():
        key = DIFFUSERS_PREFIX + name if fmt == "diffusers" else ORIGINAL_PREFIX + to_original_name(name)
        tensors[key] = tensor.detach().to("cpu", dtype).contiguous()
    return tensors


def save_lora(path: Path, peft_state: dict[str, torch.Tensor], fmt: str, dtype: torch.dtype, metadata: dict) -> Path:
    """Write a LoRA .safetensors atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file(lora_file_tensors(peft_state, fmt, dtype), str(temporary), metadata={k: str(v) for k, v in metadata.items()})
    os.replace(temporary, path)
    return path


def load_lora_state(path: Path) -> dict[str, torch.Tensor]:
    """peft-named tensors from a LoRA file of either format (the diffusers converter does the renaming)."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers

    tensors = load_file(str(path))
    if any(key.startswith(ORIGINAL_PREFIX) for key in tensors):
        tensors = _convert_non_diffusers_ltx2_lora_to_diffusers(tensors)
    if not any(key.startswith(DIFFUSERS_PREFIX) for key in tensors):
        raise ValueError(f"{path}: no LTX-2 transformer LoRA keys (expected 'transformer.' or 'diffusion_model.' prefixes)")
    return {key.removeprefix(DIFFUSERS_PREFIX): value for key, value in tensors.items() if key.startswith(DIFFUSERS_PREFIX)}
