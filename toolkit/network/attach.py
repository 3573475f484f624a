"""The adapter `network.type` asks for: LoRA (lora.py) or LoKr (lokr.py), attached to a model's transformer, and
its size known before any weight exists (`adapter_parameter_count`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import torch

from toolkit.network.lokr import attach_lokr, lokr_config
from toolkit.network.lora import ADAPTER_NAME, ADAPTER_PARAMETER_MARKERS, LoraNetwork, attach_lora, lora_config


def attach_network(
    transformer: torch.nn.Module, network_config, seed: int, default_targets: str | None = None
) -> LoraNetwork:
    """LoRA, or LoKr (peft's LoKrConfig), on the config's layers or else those matching `default_targets`
    (the model's `lora_target_pattern()`)."""
    if network_config.type == "lokr":
        return attach_lokr(transformer, network_config, seed, default_targets)
    return attach_lora(transformer, network_config, seed, default_targets)


def adapter_parameter_count(network_config, targets: Mapping[str, torch.nn.Linear]) -> int:
    """The trained parameters of the adapter `network_config` puts on `targets` (the layers by name, e.g. built on
    the meta device): what `LoraNetwork.num_parameters` says once attached.

    peft itself sizes the adapter, on one meta-device stand-in per distinct layer shape (no memory, a few
    milliseconds for LTX-2's ~1300 targets), so LoKr's factorization is peft's and not a copy of it.
    """
    from accelerate import init_empty_weights
    from peft import inject_adapter_in_model

    shapes = Counter((layer.in_features, layer.out_features, layer.bias is not None) for layer in targets.values())
    with init_empty_weights():
        stand_ins = torch.nn.ModuleDict(
            {f"shape{index}": torch.nn.Linear(*shape) for index, shape in enumerate(shapes)}
        )
        if network_config.type == "lokr":
            config = lokr_config(network_config, dict(stand_ins.items()))
        else:
            config = lora_config(network_config, list(stand_ins))
        inject_adapter_in_model(config, stand_ins, adapter_name=ADAPTER_NAME)
    per_shape = [
        sum(p.numel() for name, p in stand_in.named_parameters() if any(m in name for m in ADAPTER_PARAMETER_MARKERS))
        for stand_in in stand_ins.values()
    ]
    return sum(count * params for count, params in zip(shapes.values(), per_shape))
