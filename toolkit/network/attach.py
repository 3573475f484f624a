"""The adapter `network.type` asks for: LoRA (lora.py) or LoKr (lokr.py), attached to a model's transformer."""

from __future__ import annotations

import torch

from toolkit.network.lokr import attach_lokr
from toolkit.network.lora import LoraNetwork, attach_lora


def attach_network(
    transformer: torch.nn.Module, network_config, seed: int, default_targets: str | None = None
) -> LoraNetwork:
    """LoRA, or LoKr (peft's LoKrConfig), on the config's layers or else those matching `default_targets`
    (the model's `lora_target_pattern()`)."""
    if network_config.type == "lokr":
        return attach_lokr(transformer, network_config, seed, default_targets)
    return attach_lora(transformer, network_config, seed, default_targets)
