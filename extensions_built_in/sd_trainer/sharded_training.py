"""FSDP: the transformer's base weights sharded over the processes, for a bf16 transformer that does not fit one GPU.

Under `accelerate launch --config_file config/accelerate/fsdp.yaml` each process holds 1/N of the
transformer's frozen base weights and gathers one block at a time for its forward and backward (torch
FSDP, `use_orig_params=True`, one unit per repeated block: the module's parameters stay its own, so
the LoRA network and `adapter_strength` see them as before). The LoRA's own weights are left out of
the sharding (FSDP's `ignored_states`): they are small, train in float32 next to bf16 base weights
(FSDP flattens a unit into one dtype), and whole on every process they are averaged, clipped, saved
and resumed exactly as in data-parallel training (distributed_training.py), with no gathering of
sharded optimizer state.
"""

from __future__ import annotations

import os

import torch

from toolkit.errors import ConfigError
from toolkit.trace import get_tracer


def check_fsdp_settings(model_config) -> None:
    """FSDP shards plain tensors only: refuse what would put anything else in the transformer."""
    if getattr(model_config, "quantize", False):
        raise ConfigError(
            "model.quantize is on under an FSDP launch: optimum-quanto's quantized weights cannot be sharded by "
            "FSDP. Set model.quantize: false (each GPU then holds 1/N of the bf16 transformer), or launch "
            "data-parallel with config/accelerate/multi_gpu.yaml to keep the quantized transformer whole on each GPU."
        )
    if getattr(model_config, "layer_offloading", False):
        raise ConfigError(
            "model.layer_offloading is on under an FSDP launch: FSDP moves the shards itself and the offloader's "
            "hooks would fight it. Set model.layer_offloading: false, or launch data-parallel with "
            "config/accelerate/multi_gpu.yaml."
        )
    if getattr(model_config, "compile", False):
        raise ConfigError(
            "model.compile is on under an FSDP launch: sd_trainer does not compile a sharded transformer. "
            "Set model.compile: false."
        )


def _block_classes(transformer: torch.nn.Module) -> set[type]:
    """The wrap units: the classes named by fsdp_transformer_layer_cls_to_wrap (config/accelerate/fsdp.yaml),
    or else the members of the transformer's largest nn.ModuleList (its repeated blocks)."""
    names = [n.strip() for n in os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",") if n.strip()]
    if names:
        found = {type(m) for m in transformer.modules() if type(m).__name__ in names}
        missing = sorted(set(names) - {cls.__name__ for cls in found})
        if missing:
            raise ConfigError(
                f"fsdp_transformer_layer_cls_to_wrap names {missing}, which {type(transformer).__name__} does not "
                "contain: name its block class (LTX-2: LTX2VideoTransformerBlock) in the accelerate config file."
            )
        return found
    lists = [m for m in transformer.modules() if isinstance(m, torch.nn.ModuleList)]
    largest = max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))
    return {type(child) for child in largest}


def shard_transformer(transformer: torch.nn.Module, network, accelerator) -> torch.nn.Module:
    """The transformer wrapped in FSDP (every process calls it, and then calls the wrapper for every forward)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import ShardingStrategy

    blocks = tuple(_block_classes(transformer))
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    # accelerate keeps fsdp_sharding_strategy in reshard_after_forward (older versions: sharding_strategy)
    settings = (getattr(plugin, "reshard_after_forward", None), getattr(plugin, "sharding_strategy", None))
    strategy = next((v for v in settings if isinstance(v, ShardingStrategy)), ShardingStrategy.FULL_SHARD)
    sharded = FSDP(
        transformer,
        auto_wrap_policy=lambda module, recurse, nonwrapped_numel: recurse or isinstance(module, blocks),
        ignored_states=network.parameters(),
        sharding_strategy=strategy,
        use_orig_params=True,
        # cuda:LOCAL_RANK, or the CPU (gloo; FSDP wants "cpu", not accelerate's "cpu:0")
        device_id=accelerator.device if accelerator.device.type != "cpu" else torch.device("cpu"),
    )
    get_tracer().event(
        "fsdp",
        sharding_strategy=strategy.name,
        wrapped_blocks=sum(isinstance(m, FSDP) for m in sharded.modules()) - 1,
        block_classes=sorted(cls.__name__ for cls in blocks),
        processes=accelerator.num_processes,
        lora_parameters_whole=sum(p.numel() for p in network.parameters()),
    )
    return sharded


def check_fsdp_run(config) -> None:
    """What an FSDP launch refuses in a run's config (before any model loads)."""
    check_fsdp_settings(config.model)
    if not config.train.disable_sampling and config.sample.prompts:
        raise ConfigError(
            "train.disable_sampling is false under an FSDP launch: sampling during training is not done with a "
            "sharded transformer. Set train.disable_sampling: true and sample the saved LoRA afterwards with the "
            "generate process (like config/examples/generate_ltx2_tiny.yaml), or launch data-parallel (config/accelerate/multi_gpu.yaml)."
        )


class ShardedLora:
    """The LoRA network of a sharded transformer: its weights read and written as parameters.

    peft's state-dict helpers go through the transformer's `state_dict()`, which under FSDP gathers every
    base weight from every process (a collective that the main process, saving alone, would wait on
    forever). The LoRA's weights are whole on every process (not sharded), so they are read and written
    directly, under the names peft gives them (taken before wrapping).
    """

    def __init__(self, network) -> None:
        self.network = network
        by_storage = {p.data_ptr(): p for p in network.parameters()}
        self.by_name = {name: by_storage[t.data_ptr()] for name, t in network.state_dict().items()}

    def __getattr__(self, name: str):
        return getattr(self.network, name)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: parameter.detach() for name, parameter in self.by_name.items()}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        unexpected = sorted(set(state_dict) - set(self.by_name))
        if unexpected:
            raise KeyError(f"LoRA weights do not match this transformer: unexpected keys {unexpected[:5]}")
        with torch.no_grad():
            for name, tensor in state_dict.items():
                self.by_name[name].copy_(tensor)
