"""The adapter a run trains: attached to the model's transformer (its default targets, or the config's), loaded
from `network.pretrained_lora_path` when given, and the transformer made ready to train (gradient
checkpointing, train mode, layer offloading after the LoRA, torch.compile), each step traced."""

from __future__ import annotations

from pathlib import Path

from toolkit.network.attach import attach_network
from toolkit.network.formats import load_lora_state
from toolkit.network.lora import LoraNetwork


def attach_trained_network(model, config, tracer) -> LoraNetwork:
    """The LoRA (or LoKr) of `config.network` on `model.transformer`, ready for the first step."""
    transformer = model.transformer
    network = attach_network(transformer, config.network, config.train.seed, model.lora_target_pattern())
    if config.network.pretrained_lora_path:
        pretrained = Path(config.network.pretrained_lora_path)
        keys = model.lora_file_keys()
        network.load_state_dict(load_lora_state(pretrained, alpha=network.alpha, rank=network.rank, keys=keys))
    if config.train.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    transformer.train()
    model.offload_transformer()
    if config.model.compile:
        # In place (nn.Module.compile): the module, its parameter names and the LoRA state dict stay as they are.
        transformer.compile()
        tracer.event("compile", module=type(transformer).__name__, backend="inductor")
    tracer.event(
        "network",
        type=network.kind,
        rank=network.rank,
        alpha=network.alpha,
        target_modules=len(network.target_modules),
        trainable_params=network.num_parameters,
    )
    return network
