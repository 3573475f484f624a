"""LoRA files: the diffusers format and the model's original (ComfyUI) format.

Both hold the same tensors. diffusers keys are ``transformer.<module>.lora_A.weight``
under diffusers' module names; the original format is
``diffusion_model.<module>.lora_A.weight`` under the names of the model's original
checkpoint, which only the model knows: it passes its `LoraFileKeys`
(`BaseModel.lora_file_keys()`, toolkit/models/lora_keys.py) to write or read that format.
For LTX-2, `LTX2Pipeline.load_lora_weights` reads both. Files are written atomically.

Strength. An adapter's update is ``(alpha / rank) * B @ A``, but the loaders
do not agree on where alpha lives: diffusers reads it from the
`lora_adapter_metadata` header (alpha = rank without it) and rejects
per-module ``.alpha`` tensors in its own format; ComfyUI reads only ``.alpha``
tensors (scale 1.0 without them); Lightricks' ltx-core reads neither and
applies ``strength * B @ A``. So the files users load are written with the
strength folded into the weights: ``B' = (alpha / rank) * B`` and a header
alpha equal to the rank. Every loader then applies ``B' @ A``, the trained
update. Resume checkpoints keep the trained tensors unchanged
(`fold_strength=False`) with the true alpha in the header, so they restore
training exactly. `load_lora_state` reads any of these (and kohya-style
``.alpha`` tensors) and rescales to the adapter it is loaded into.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

from toolkit.atomic_write import atomic_write
from toolkit.errors import CheckpointError
from toolkit.finite import describe_names, nonfinite_tensor_names
from toolkit.models.lora_keys import LoraFileKeys
from toolkit.safetensors_files import write_safetensors

FORMATS = ("diffusers", "comfy")
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY
DIFFUSERS_PREFIX = "transformer."
ORIGINAL_PREFIX = "diffusion_model."
# Header keys this project adds: the trained alpha and rank, and whether the strength is in the weights.
NETWORK_TYPE_KEY = "network_type"
TRAINED_ALPHA_KEY = "trained_alpha"
TRAINED_RANK_KEY = "trained_rank"
STRENGTH_FOLDED_KEY = "strength_in_weights"

# The tensor of each adapted module that the strength multiplies when folded: LoRA's up projection (B),
# LoKr's first Kronecker factor (or the first half of it when peft decomposes it).
_SCALED_PARTS = ("lora_B.weight", "lokr_w1", "lokr_w1_a")
_ADAPTER_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_[AB]\.weight|lokr_\w+|alpha)$")

def _original_keys(keys: LoraFileKeys | None, what: str) -> LoraFileKeys:
    if keys is None:
        raise ValueError(
            f"{what} is in the original (comfy) key format, which needs the model's key names: "
            "pass keys=<model class>.lora_file_keys()"
        )
    return keys


def format_warning(fmt: str, path: Path | str, network_type: str = "lora") -> str | None:
    """What a user must know about a LoRA file of format `fmt` that some target tool would silently skip."""
    if network_type == "lokr":
        readers = "ComfyUI reads it" if fmt == "comfy" else "set save.format: comfy for ComfyUI"
        return (
            f"{path} is a LoKr (network.type: lokr): diffusers (LTX2Pipeline.load_lora_weights) and Lightricks' "
            f"ltx-core load only LoRA tensors and cannot use it; {readers}, and this trainer loads it back "
            "(resume, network.pretrained_lora_path). Use network.type: lora for a file every tool loads."
        )
    if fmt == "diffusers":
        return (
            f"{path} is in diffusers format (save.format: diffusers): LTX2Pipeline.load_lora_weights reads it, "
            "but ComfyUI and Lightricks' ltx-core patch nothing from its 'transformer.' keys. "
            "For those tools use save.format: comfy, the default (diffusers reads that format too)."
        )
    return None


def _split_key(key: str) -> tuple[str, str]:
    match = _ADAPTER_KEY.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not a LoRA/LoKr tensor name (<module>.lora_A.weight, <module>.lokr_w1, ...)")
    return match["module"], match["part"]


def network_type(peft_state: dict[str, torch.Tensor]) -> str:
    """lokr when the tensors are peft's LoKr factors, else lora."""
    return "lokr" if any(".lokr_" in key for key in peft_state) else "lora"


def adapter_rank(peft_state: dict[str, torch.Tensor]) -> int:
    """The one LoRA rank of a state dict (from its lora_A shapes)."""
    ranks = {tensor.shape[0] for key, tensor in peft_state.items() if key.endswith(".lora_A.weight")}
    if len(ranks) != 1:
        raise ValueError(
            f"LoRA modules have ranks {sorted(ranks)}; one rank per file is supported (a LoKr file needs its rank given)"
        )
    return ranks.pop()


def scale_strength(peft_state: dict[str, torch.Tensor], factors: dict[str, float] | float) -> dict[str, torch.Tensor]:
    """The state with each module's scaled tensor (B, lokr_w1) multiplied by its factor (one for all, or per module)."""
    scaled = {}
    for key, tensor in peft_state.items():
        module, part = _split_key(key)
        factor = factors if isinstance(factors, float | int) else factors.get(module, 1.0)
        scaled[key] = tensor * factor if part in _SCALED_PARTS and factor != 1.0 else tensor
    return scaled


def lora_file_tensors(
    peft_state: dict[str, torch.Tensor], fmt: str, dtype: torch.dtype, keys: LoraFileKeys | None = None
) -> dict[str, torch.Tensor]:
    """The tensors a LoRA file of format `fmt` holds, from peft's state dict (`keys`: needed for comfy)."""
    if fmt not in FORMATS:
        raise ValueError(f"save.format: {fmt!r} is not one of {FORMATS}")
    if fmt == "comfy":
        keys = _original_keys(keys, "save.format: comfy")
    tensors = {}
    for name, tensor in peft_state.items():
        key = DIFFUSERS_PREFIX + name if fmt == "diffusers" else ORIGINAL_PREFIX + keys.to_original(name)
        tensors[key] = tensor.detach().to("cpu", dtype).contiguous()
    return tensors


def adapter_metadata(peft_state: dict[str, torch.Tensor], alpha: float, rank: int | None = None) -> str:
    """The LoraConfig diffusers rebuilds on load (rank, alpha, adapted modules), as JSON under `transformer.`."""
    modules = sorted({_split_key(name)[0] for name in peft_state})
    config = {"r": rank if rank is not None else adapter_rank(peft_state), "lora_alpha": float(alpha), "target_modules": modules}
    return json.dumps({f"{DIFFUSERS_PREFIX}{key}": value for key, value in config.items()}, sort_keys=True)


def save_lora(
    path: Path,
    peft_state: dict[str, torch.Tensor],
    fmt: str,
    dtype: torch.dtype,
    metadata: dict,
    alpha: float,
    fold_strength: bool = True,
    rank: int | None = None,
    keys: LoraFileKeys | None = None,
) -> Path:
    """Write a LoRA .safetensors atomically (a temp file renamed into place).

    A LoRA holding NaN or inf (after folding and the cast to `dtype`) is never written: CheckpointError instead.

    `alpha` is the adapter's alpha, `rank` its rank (read from the LoRA A shapes when not given);
    `keys` is the model's key mapping, needed for `fmt="comfy"`.
    With `fold_strength` (files for users) the weights carry alpha / rank and the header says
    alpha = rank; without it (resume checkpoints) the tensors are the trained ones, alpha as given.
    """
    rank = rank if rank is not None else adapter_rank(peft_state)
    kind = network_type(peft_state)
    header = {key: str(value) for key, value in metadata.items()}
    header.update({
        NETWORK_TYPE_KEY: kind, TRAINED_ALPHA_KEY: str(float(alpha)), TRAINED_RANK_KEY: str(rank),
        STRENGTH_FOLDED_KEY: str(fold_strength).lower(),
    })
    if fold_strength:
        peft_state = scale_strength({k: v.detach().float() for k, v in peft_state.items()}, float(alpha) / rank)
        alpha = rank
    if kind == "lora":  # diffusers builds a LoraConfig from it; it has nothing to build a LoKr from
        header[ADAPTER_METADATA_KEY] = adapter_metadata(peft_state, alpha, rank)
    tensors = lora_file_tensors(peft_state, fmt, dtype, keys)
    _refuse_nonfinite(path, peft_state, tensors, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        write_safetensors(tensors, temporary, metadata=header)
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


def _file_alphas(tensors: dict[str, torch.Tensor], header: dict[str, str], rank: int | None) -> dict[str, float]:
    """Each module's alpha as a loader reads it: `.alpha` tensors, else our header, else diffusers', else the rank."""
    config = json.loads(header.get(ADAPTER_METADATA_KEY, "{}"))
    if STRENGTH_FOLDED_KEY in header:
        default = rank if header[STRENGTH_FOLDED_KEY] == "true" else float(header[TRAINED_ALPHA_KEY])
    else:
        default = config.get(f"{DIFFUSERS_PREFIX}lora_alpha", config.get(f"{DIFFUSERS_PREFIX}r", rank))
    patterns = config.get(f"{DIFFUSERS_PREFIX}alpha_pattern") or {}
    alphas = {}
    for key in tensors:
        module, part = _split_key(key)
        if part == "alpha":
            alphas[module] = float(tensors[key])
        elif module not in alphas:
            alphas[module] = float(patterns.get(module, default))
    return alphas


def load_lora_state(
    path: Path, alpha: float | None = None, rank: int | None = None, keys: LoraFileKeys | None = None
) -> dict[str, torch.Tensor]:
    """peft-named tensors from a LoRA file of either format (`keys`, the model's mapping, renames the original one).

    With `alpha`, the tensors are rescaled so that an adapter with that alpha (and the file's rank)
    applies the update the file holds, whatever alpha the file was written with (its header, kohya
    ``.alpha`` tensors, or folded in). Without it they are returned as stored.
    """
    with safe_open(str(path), "pt") as handle:
        header = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if any(key.startswith(ORIGINAL_PREFIX) for key in tensors):
        tensors = _original_keys(keys, str(path)).to_diffusers(tensors)
    if not any(key.startswith(DIFFUSERS_PREFIX) for key in tensors):
        raise ValueError(f"{path}: no transformer LoRA keys (expected 'transformer.' or 'diffusion_model.' prefixes)")
    tensors = {key.removeprefix(DIFFUSERS_PREFIX): value for key, value in tensors.items() if key.startswith(DIFFUSERS_PREFIX)}
    weights = {key: value for key, value in tensors.items() if _split_key(key)[1] != "alpha"}
    if alpha is None:
        return weights
    file_rank = rank if rank is not None else int(header.get(TRAINED_RANK_KEY) or adapter_rank(weights))
    factors = {module: file_alpha / float(alpha) for module, file_alpha in _file_alphas(tensors, header, file_rank).items()}
    return scale_strength(weights, factors)
