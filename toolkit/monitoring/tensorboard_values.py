"""The numbers and pictures behind the TensorBoard categories, from plain tensors.

Pure functions: no writer, no step, no flags (those are the monitor's, in
tensorboard.py), so each can be checked on its own.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

NamedParameters = Iterable[tuple[str, torch.Tensor]]
_BLOCK_NAME = re.compile(r"^(.*?\.\d+)(?:\.|$)")


class TensorBoardError(ValueError):
    """An input the monitor cannot turn into an event; the message says which and how to fix it."""


@functools.lru_cache(maxsize=65536)  # the same few thousand names, at every logged step
def block_of_parameter(name: str) -> str:
    """``transformer_blocks.3.attn1.to_q.lora_A.weight`` -> ``transformer_blocks.3``;
    a name without a numeric index -> its first part."""
    match = _BLOCK_NAME.match(name)
    return match.group(1) if match else name.split(".", 1)[0]


def trainable(named_params: NamedParameters) -> tuple[list[str], list[torch.Tensor]]:
    pairs = [(name, param) for name, param in named_params if param.requires_grad]
    return [name for name, _ in pairs], [param for _, param in pairs]


def norms(tensors: list[torch.Tensor]) -> list[float]:
    """L2 norms (float32), one fused kernel and one read-back per device rather than one per tensor
    (``torch._foreach_norm``, what ``clip_grad_norm_`` uses)."""
    found = [0.0] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_device.setdefault(tensor.device, []).append(index)
    for indices in by_device.values():
        detached = [tensors[i].detach() for i in indices]
        for index, norm in zip(indices, torch.stack(torch._foreach_norm(detached, 2, dtype=torch.float32)).tolist()):
            found[index] = norm
    return found


def host_copies(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 copies on the CPU, with one transfer (and one device sync) for all of them."""
    if not tensors:
        return {}
    flat = torch.cat([tensor.detach().float().flatten() for tensor in tensors.values()]).cpu()
    sizes = [tensor.numel() for tensor in tensors.values()]
    parts = flat.split(sizes)
    return {name: part.view(tensor.shape) for (name, tensor), part in zip(tensors.items(), parts)}


def snr_db(signal_power: float, error_power: float) -> float:
    if error_power <= 0:
        return math.inf
    if signal_power <= 0:
        return -math.inf
    return 10.0 * math.log10(signal_power / error_power)


def diffusion_values(sigmas: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, buckets: int) -> dict[str, float]:
    """Prediction MSE and SNR (dB, target power over error power), overall and per sigma bucket."""
    error_power = (pred.detach().float() - target.detach().float()).pow(2).flatten(1).mean(1).cpu()
    target_power = target.detach().float().pow(2).flatten(1).mean(1).cpu()
    values: dict[str, float] = {
        "Noise_Prediction_MSE": error_power.mean().item(),
        "Signal_to_Noise_Ratio": snr_db(target_power.mean().item(), error_power.mean().item()),
        "Timestep_Mean": sigmas.mean().item(),
    }
    bucket_of = (sigmas * buckets).long().clamp(max=buckets - 1)
    for bucket in range(buckets):
        members = bucket_of == bucket
        if members.any():
            span = f"t{bucket / buckets:.2f}-{(bucket + 1) / buckets:.2f}"
            values[f"MSE/{span}"] = error_power[members].mean().item()
            values[f"Signal_to_Noise_Ratio/{span}"] = snr_db(
                target_power[members].mean().item(), error_power[members].mean().item()
            )
    return values


def noise_analysis_values(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean and std of prediction and target, their Pearson correlation (NaN if one is constant), the std ratio."""
    pred_values, target_values = pred.detach().float().flatten(), target.detach().float().flatten()
    pred_centered, target_centered = pred_values - pred_values.mean(), target_values - target_values.mean()
    covariance = (pred_centered * target_centered).sum()
    spread = (pred_centered.pow(2).sum() * target_centered.pow(2).sum()).sqrt()
    stats = torch.stack(
        [pred_values.mean(), pred_values.std(), target_values.mean(), target_values.std(), covariance, spread]
    ).tolist()
    values = dict(zip(("Pred_Mean", "Pred_Std", "Target_Mean", "Target_Std"), stats[:4]))
    covariance_sum, spread_sum = stats[4:]
    values["Correlation"] = covariance_sum / spread_sum if spread_sum > 0 else math.nan
    values["Std_Ratio"] = values["Pred_Std"] / values["Target_Std"] if values["Target_Std"] > 0 else math.nan
    return values


def architecture_values(components: Mapping[str, nn.Module]) -> tuple[dict[str, float], str]:
    """Parameter counts and trainable share per component and in total (a parameter shared by two
    components counted once), and the same as a markdown table."""
    values: dict[str, float] = {}
    rows = ["| component | class | parameters | trainable | trainable % |", "|---|---|---:|---:|---:|"]
    every_param: dict[int, torch.Tensor] = {}
    for name, module in components.items():
        params = list(module.parameters())
        count = sum(p.numel() for p in params)
        trainable_count = sum(p.numel() for p in params if p.requires_grad)
        every_param.update((id(p), p) for p in params)
        share = 100.0 * trainable_count / count if count else 0.0
        values.update({f"{name}/Params": count, f"{name}/Trainable_Params": trainable_count})
        values[f"{name}/Trainable_Percent"] = share
        rows.append(f"| {name} | {type(module).__name__} | {count:,} | {trainable_count:,} | {share:.3f} |")
    total = sum(p.numel() for p in every_param.values())
    total_trainable = sum(p.numel() for p in every_param.values() if p.requires_grad)
    values.update({"Total/Params": total, "Total/Trainable_Params": total_trainable})
    values["Total/Trainable_Percent"] = 100.0 * total_trainable / total if total else 0.0
    return values, "\n".join(rows)


def side_by_side_video(panels: Mapping[str, torch.Tensor], min_side: int = 64) -> torch.Tensor:
    """Latent planes (F, H, W) next to each other, each scaled to [0, 1] over all its frames and
    enlarged to ``min_side`` pixels: a grey video shaped (1, F, 3, H, W * len(panels)) for add_video."""
    frames = []
    for plane in panels.values():
        plane = plane.detach().float().cpu()
        low, high = plane.min(), plane.max()
        scaled = (plane - low) / (high - low) if high > low else torch.zeros_like(plane)
        factor = max(1, math.ceil(min_side / max(1, min(plane.shape[1:]))))
        frames.append(scaled.repeat_interleave(factor, 1).repeat_interleave(factor, 2))
    video = torch.cat(frames, dim=2)  # (F, H, W * panels)
    return video.unsqueeze(1).expand(-1, 3, -1, -1).unsqueeze(0).contiguous()


def sample_preview(frames: torch.Tensor, longest_side: int) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) shrunk (area averaging, aspect kept) so that neither side exceeds `longest_side`;
    frames already that small are returned as they are."""
    height, width = frames.shape[1:3]
    scale = longest_side / max(height, width)
    if scale >= 1:
        return frames
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    shrunk = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=size, mode="area")
    return shrunk.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def same_shape(pred: torch.Tensor, target: torch.Tensor, method: str) -> None:
    if pred.shape != target.shape:
        raise TensorBoardError(
            f"{method} needs pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def scalar(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TensorBoardError(f"{name} is a tensor of shape {tuple(value.shape)}; log one value (e.g. .mean()).")
        return float(value.detach().item())
    return float(value)


def plain(value: Any) -> Any:
    """Mappings, lists and scalars as YAML-safe builtins; anything else (paths, enums) as its str."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten(item, f"{path}."))
        elif isinstance(item, (list, tuple)) and all(isinstance(entry, Mapping) for entry in item) and item:
            for index, entry in enumerate(item):
                flat.update(flatten(entry, f"{path}.{index}."))
        else:
            flat[path] = item
    return flat


def hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
