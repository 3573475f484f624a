"""LoRA files: the diffusers format and the original LTX-2 / ComfyUI format.

Both hold the same tensors. diffusers keys are ``transformer.<module>.lora_A.weight``
under diffusers' module names; the original format is
``diffusion_model.<module>.lora_A.weight`` under the original LTX-2 names.
`LTX2Pipeline.load_lora_weights` reads both. Files are written atomically.

The LoRA's strength (alpha / rank) is not in the tensors: both formats carry
it in the `lora_adapter_metadata` header diffusers reads its LoraConfig from
(without it diffusers takes alpha = rank). Per-module ``.alpha`` tensors, the
kohya/ComfyUI way, are not written: diffusers' LTX-2 loader rejects them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from toolkit.errors import CheckpointError
from toolkit.finite import describe_names, nonfinite_tensor_names

FORMATS = ("diffusers", "comfy")
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY
DIFFUSERS_PREFIX = "transformer."
ORIGINAL_PREFIX = "diffusion_model."

def to_original_name(diffusers_name: str) -> str:
    """A transformer module/parameter name under its original LTX-2 name (shared with single-file export)."""
    from toolkit.models.single_file import original_transformer_key

    return original_transformer_key(diffusers_name)


def lora_file_tensors(peft_state: dict[str, torch.Tensor], fmt: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tensors a LoRA file of format `fmt` holds, from peft's state dict."""
    if fmt not in FORMATS:
        raise ValueError(f"save.format: {fmt!r} is not one of {FORMATS}")
    tensors = {}
    for name, tensor in peft_state.items():
        key = DIFFUSERS_PREFIX + name if fmt == "diffusers" else ORIGINAL_PREFIX + to_original_name(name)
        tensors[key] = tensor.detach().to("cpu", dtype).contiguous()
    return tensors


def adapter_metadata(peft_state: dict[str, torch.Tensor], alpha: float) -> str:
    """The LoraConfig diffusers rebuilds on load (rank, alpha, adapted modules), as JSON under `transformer.`."""
    modules = sorted({name.rsplit(".lora_", 1)[0] for name in peft_state if ".lora_" in name})
    ranks = {peft_state[f"{module}.lora_A.weight"].shape[0] for module in modules}
    if len(ranks) != 1:
        raise ValueError(f"LoRA modules have different ranks {sorted(ranks)}; one rank per file is supported")
    config = {"r": ranks.pop(), "lora_alpha": float(alpha), "target_modules": modules}
    return json.dumps({f"{DIFFUSERS_PREFIX}{key}": value for key, value in config.items()}, sort_keys=True)


def save_lora(
    path: Path, peft_state: dict[str, torch.Tensor], fmt: str, dtype: torch.dtype, metadata: dict, alpha: float
) -> Path:
    """Write a LoRA .safetensors atomically (a temp file renamed into place); `alpha` is the LoRA alpha.

    A LoRA holding NaN or inf (after the cast to `dtype`) is never written: CheckpointError instead.
    """
    tensors = lora_file_tensors(peft_state, fmt, dtype)
    _refuse_nonfinite(path, peft_state, tensors, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    header = {key: str(value) for key, value in metadata.items()}
    header[ADAPTER_METADATA_KEY] = adapter_metadata(peft_state, alpha)
    save_file(tensors, str(temporary), metadata=header)
    os.replace(temporary, path)
    return path


def _refuse_nonfinite(path: Path, peft_state: dict, tensors: dict, dtype: torch.dtype) -> None:
    bad = nonfinite_tensor_names(tensors)
    if not bad:
        return
    if nonfinite_tensor_names(peft_state):
        cause = "the LoRA weights themselves are not finite (training diverged)"
        remedy = "lower train.lr (or train.max_grad_norm) and resume from the last good checkpoint"
    else:
        cause = f"the weights are finite but overflow {dtype} (too large for it)"
        remedy = "set save.dtype: float32 or bfloat16, or lower train.lr"
    raise CheckpointError(
        f"not writing {path}: {len(bad)} of {len(tensors)} tensors hold NaN or inf ({describe_names(bad)}); "
        f"{cause}. To fix: {remedy}."
    )


def load_lora_state(path: Path) -> dict[str, torch.Tensor]:
    """peft-named tensors from a LoRA file of either format (the diffusers converter does the renaming)."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers

    tensors = load_file(str(path))
    if any(key.startswith(ORIGINAL_PREFIX) for key in tensors):
        tensors = _convert_non_diffusers_ltx2_lora_to_diffusers(tensors)
    if not any(key.startswith(DIFFUSERS_PREFIX) for key in tensors):
        raise ValueError(f"{path}: no LTX-2 transformer LoRA keys (expected 'transformer.' or 'diffusion_model.' prefixes)")
    return {key.removeprefix(DIFFUSERS_PREFIX): value for key, value in tensors.items() if key.startswith(DIFFUSERS_PREFIX)}
