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
