"""`run.py --dry-run` and the memory-plan table: what the model class says about its checkpoint, then the plan.

Generic over model archs: the class registered for `model.arch` answers (`checkpoint_report`,
`checkpoint_version`, toolkit/models/base_model.py); no weights are read. Processes build their
dry-run text here, and a model traces its plan from here, so neither imports a process.
"""

from __future__ import annotations


def dry_run_report(model_config, network_config=None, device: str = "cpu", process_lines=()) -> str:
    """`run.py --dry-run`: what the model class says about the checkpoint (e.g. LTX-2: its version, each component
    built on the meta device), then the memory plan, then `process_lines` (what the process adds: a trainer, the
    disk its saves need). No weights are read.

    A device this machine does not have (`device: cuda` without CUDA) ends the report with one line saying
    the run would stop here; the plan is still printed and the dry run still succeeds, since a plan is
    often made on another machine than the one that trains (`model.vram_gb`, `model.ram_gb`).
    """
    from toolkit.errors import ConfigError
    from toolkit.extensions import load_model_class

    model_class = load_model_class(model_config.arch)
    check = getattr(model_class, "checkpoint_report", None)
    lines = list(check(model_config)) if callable(check) else []
    mismatched = getattr(model_class, "component_problems", None)
    problems = mismatched(model_config) if callable(mismatched) else []
    if problems:  # parts of different releases in one checkpoint: refused, as the run refuses them before loading
        raise ConfigError(problems)
    lines.append(memory_plan_report(model_config, network_config))
    return "\n".join([*lines, *process_lines, *machine_refusals(device, model_config.te_device)])


def machine_refusals(*devices: str | None) -> list[str]:
    """One line naming what the run would refuse on this machine, or none when it would start."""
    from toolkit.devices import device_unavailable

    reasons = list(dict.fromkeys(reason for device in devices if device and (reason := device_unavailable(device))))
    if not reasons:
        return []
    return [f"On this machine the run would stop before loading: {'; '.join(reasons)}"]


def trace_memory_plan(model_config, network_config=None) -> None:
    """The memory plan of a process's settings as the trace's `memory_plan_table` event, in a verbose run only
    (building it costs about a second). The process traces it, as it knows the LoRA it will train."""
    from toolkit.trace import Lines, get_tracer

    tracer = get_tracer()
    if tracer.enabled:
        tracer.event("memory_plan_table", plan=Lines(memory_plan_report(model_config, network_config).splitlines()))


def planned_lora(model_config, network_config):
    """The LoRA of a process's settings as the memory plan sizes it (toolkit.memory_management.plan.LoraPlan: rank,
    layers, parameters), from the checkpoint's configs on the meta device: no weights read. A run sizes its saves
    from it before loading; MemoryPlanError when the plan cannot read the checkpoint."""
    from toolkit.memory_management.plan import plan_lora

    return plan_lora(plan_settings(model_config, network_config))


def plan_settings(model_config, network_config=None):
    """The memory plan's settings of a process's config, with the checkpoint's version as its model class reads it."""
    from dataclasses import replace

    from toolkit.extensions import load_model_class
    from toolkit.memory_management.plan_settings import MemoryPlanSettings

    settings = MemoryPlanSettings.from_config(model_config, network_config)
    version_of = getattr(load_model_class(model_config.arch), "checkpoint_version", None)
    if callable(version_of):
        settings = replace(settings, version=version_of(model_config))
    return settings


def memory_plan_report(model_config, network_config=None) -> str:
    """The memory plan of a process's settings, built from meta-device components (no weights read)."""
    from toolkit.memory_management.plan import build_memory_plan, format_plan

    budget = int(model_config.vram_gb * 1024**3) if model_config.vram_gb else None
    settings = plan_settings(model_config, network_config)
    host = int(model_config.ram_gb * 1024**3) if model_config.ram_gb else None
    plan = build_memory_plan(settings, device_total_bytes=budget, host_total_bytes=host)
    from toolkit.distributed import world_size
    from toolkit.memory_management.plan_data_parallel import data_parallel_plan_lines, fsdp_plan_lines

    lines = [format_plan(plan), *data_parallel_plan_lines(plan.lora.params, world_size())]
    transformer = plan.components.get("transformer")
    if transformer is not None and not transformer.qtype:  # FSDP shards the unquantized transformer only
        lines += fsdp_plan_lines(transformer, plan.lora.params, world_size())
    return "\n".join(lines)
