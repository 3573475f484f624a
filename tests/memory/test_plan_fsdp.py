"""The memory plan's FSDP line: 1/N of the unquantized transformer's weights per GPU plus one gathered block."""

from __future__ import annotations

from toolkit.memory_management.plan import MemoryPlanSettings, build_memory_plan
from toolkit.memory_management.plan_data_parallel import fsdp_plan_lines

GIB = 1024**3


def test_fsdp_line_shards_the_transformer_weights_over_the_processes():
    plan = build_memory_plan(MemoryPlanSettings(), device_total_bytes=24 * GIB, host_total_bytes=64 * GIB)
    transformer = plan.components["transformer"]
    assert transformer.qtype is None and transformer.block.name == "transformer_blocks.0"
    lines = fsdp_plan_lines(transformer, plan.lora.params, world_size=4)
    assert f"transformer's {transformer.loaded_bytes / GIB:.2f} GiB of weights" in lines[0]
    assert f"({transformer.block.load_bytes / 1024**2:.1f} MiB;" in lines[0]
    assert f"{transformer.loaded_bytes / 4 / GIB:.2f} GiB of transformer weights" in lines[1]
    assert f"the LoRA ({plan.lora.params:,} parameters) stays whole" in lines[1]
    assert len(fsdp_plan_lines(transformer, plan.lora.params, world_size=1)) == 1  # N not known: the rule only
