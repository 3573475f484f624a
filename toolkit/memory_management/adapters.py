"""Which modules belong to a LoRA adapter (peft) rather than to the base model.

Quantization and layer offloading act on the base model's layers only: a peft
``lora.Linear`` keeps the frozen layer as ``base_layer`` and the trainable
adapter as ``lora_A`` / ``lora_B`` (``nn.Linear`` themselves). The adapter
layers are small, trained and read every step, so they stay in full precision
on the device.
"""

from __future__ import annotations

from torch import nn


def adapter_module_ids(root: nn.Module) -> set[int]:
    """ids of every module inside a peft tuner layer's adapter containers (lora_A, lora_B, ...)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    ids: set[int] = set()
    for module in root.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        for attribute in module.adapter_layer_names:
            container = getattr(module, attribute, None)
            if isinstance(container, nn.Module):
                ids.update(id(inner) for inner in container.modules())
    return ids
