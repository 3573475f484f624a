"""Training a clip with the adapter at a strength other than 1 (a dataset's `network_weight`, as ai-toolkit does).

peft keeps each adapted layer's output scale in `layer.scaling[adapter]`
(alpha / rank for LoRA); multiplying it by the strength for the duration of
a prediction is what ai-toolkit's `network.multiplier` does. Any peft tuner
layer with a `scaling` table (LoRA, LoKr) works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from toolkit.network.lora import ADAPTER_NAME


@contextlib.contextmanager
def adapter_strength(transformer: torch.nn.Module, strength: float) -> Iterator[None]:
    """Scale every adapter layer of `transformer` by `strength` inside the block; restored after."""
    if strength == 1.0:
        yield
        return
    layers = [
        module
        for module in transformer.modules()
        if isinstance(module, BaseTunerLayer) and ADAPTER_NAME in getattr(module, "scaling", {})
    ]
    saved = [layer.scaling[ADAPTER_NAME] for layer in layers]
    try:
        for layer, scale in zip(layers, saved):
            layer.scaling[ADAPTER_NAME] = scale * strength
        yield
    finally:
        for layer, scale in zip(layers, saved):
            layer.scaling[ADAPTER_NAME] = scale
