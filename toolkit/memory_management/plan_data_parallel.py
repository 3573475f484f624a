"""The memory plan's note on data-parallel training: what N processes add per GPU and per machine."""

from __future__ import annotations


def data_parallel_plan_lines(lora_params: int, world_size: int | None = None) -> list[str]:
    """What data parallelism adds to the memory plan of one process (the plan is per process, i.e. per GPU).

    The gradient exchange holds the LoRA gradients twice more in float32 (the flat buffer sent and the
    averaged one received); the base model is not replicated differently: every process holds the
    whole plan above. Host memory is per process too, so a machine running N processes needs N times
    the plan's host totals (loading: the main process loads first, then the other N - 1 together).
    """
    exchange = 2 * lora_params * 4
    processes = f"{world_size} processes" if world_size and world_size > 1 else "N processes"
    return [
        f"Data parallel (accelerate launch / torchrun, {processes}): each GPU holds the device totals above "
        f"plus {exchange / 1024**2:.1f} MiB for the LoRA gradient exchange (2 x {lora_params:,} float32 values).",
        "  Host RAM is per process: a machine running N processes needs N x the host totals above "
        "(loading: the main process first, then the other N - 1 at once).",
    ]


def fsdp_plan_lines(transformer, lora_params: int, world_size: int | None = None) -> list[str]:
    """What an FSDP launch (config/accelerate/fsdp.yaml) changes in the plan: the transformer's weights per GPU.

    `transformer` is the plan's transformer component (unquantized: FSDP shards plain tensors). Each GPU
    keeps 1/N of its loaded weights and gathers one block at its load dtype for the forward and the
    backward (two with the backward prefetch); the LoRA is not sharded (whole on every GPU, its gradients
    exchanged as in data parallel).
    """
    processes = world_size if world_size and world_size > 1 else None
    label = f"{processes} processes" if processes else "N processes"
    block = transformer.block.load_bytes
    lines = [
        f"FSDP (accelerate launch --config_file config/accelerate/fsdp.yaml, {label}, model.quantize off): each GPU "
        f"holds 1/N of the transformer's {transformer.loaded_bytes / 1024**3:.2f} GiB of weights plus one gathered "
        f"block ({block / 1024**2:.1f} MiB; two while the backward prefetches), in place of the transformer line above.",
    ]
    if processes:
        shard = transformer.loaded_bytes / processes
        lines.append(
            f"  With {processes} processes: {shard / 1024**3:.2f} GiB of transformer weights + {2 * block / 1024**3:.2f} "
            f"GiB gathered per GPU; the LoRA ({lora_params:,} parameters) stays whole on every GPU."
        )
    return lines
