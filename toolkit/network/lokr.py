"""LoKr adapters (peft's LoKrConfig, the LyCORIS method) on a model's transformer.

Each adapted weight gets ``scale * kron(w1, w2)``: w1 is a small factor, w2
the larger one, stored as a rank-`linear` product ``w2_a @ w2_b`` unless
`lokr_full_rank`. peft's scale is ``alpha / r``. With `lokr_full_rank` the
rank is raised to the largest adapted dimension, so peft keeps w2 whole, and
alpha equals it (scale 1), as LyCORIS and ComfyUI apply a full-matrix LoKr.

Where the files load: ComfyUI reads peft's tensor names (`lokr_w1`,
`lokr_w2`, `lokr_w2_a`, `lokr_w2_b`) under the `diffusion_model.` names of
`save.format: comfy`; the scale is folded into w1 like LoRA's into B.
diffusers' `LTX2Pipeline.load_lora_weights` and Lightricks' ltx-core read only
LoRA (lora_A / lora_B) tensors, so they cannot load a LoKr file; the trainer
warns at the start of the run (`format_warning`). This trainer loads it back
(resume, `pretrained_lora_path`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from toolkit.network.lora import ADAPTER_NAME, LoraNetwork, resolve_targets


def full_rank(linears: Iterable[torch.nn.Linear]) -> int:
    """A rank at which peft keeps every target's larger Kronecker factor whole (>= half of each side it factors)."""
    return max(max(module.in_features, module.out_features) for module in linears)


def attach_lokr(
    transformer: torch.nn.Module, network_config, seed: int, default_targets: str | None = None
) -> LoraNetwork:
    """Add a peft LoKr adapter to `transformer`; only its weights train.

    As with LoRA, the initial weights come from `seed` alone (w1 starts at
    zero, so the adapted model starts as the base model) and the global RNG is
    left as it was. `dropout` becomes LoKr's rank dropout (LoKr has no input
    dropout).
    """
    targets = resolve_targets(transformer, network_config, default_targets)
    modules = dict(transformer.named_modules())
    config = lokr_config(network_config, {name: modules[name] for name in targets})
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer.add_adapter(config, adapter_name=ADAPTER_NAME)
    network = LoraNetwork(transformer, config.r, config.alpha, targets, kind="lokr")
    for parameter in network.parameters():
        parameter.data = parameter.data.float()
    return network


def lokr_config(network_config, targets: Mapping[str, torch.nn.Linear]):
    """peft's LoKrConfig of `network_config` on the layers `targets` (by name); with `lokr_full_rank` the rank is
    the largest adapted dimension, and alpha the same (scale 1)."""
    from peft import LoKrConfig

    rank, alpha = network_config.linear, network_config.linear_alpha
    if network_config.lokr_full_rank:
        rank = full_rank(targets.values())
        alpha = float(rank)
    return LoKrConfig(
        r=rank,
        alpha=alpha,
        rank_dropout=network_config.dropout,
        target_modules=list(targets),
        decompose_factor=network_config.lokr_factor,
        init_weights=True,
    )
