"""The run folder, the per-process tracer and the logger, set up once at the start of a process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.logging import LogConfig, UnifiedLogger, setup_logging
from toolkit.trace import TraceConfig, init_tracer


@dataclass
class RunContext:
    folder: Path
    tracer: object
    logger: UnifiedLogger


def open_run(name: str, base_folder: str, model_config, logging_config) -> RunContext:
    """Create `<base_folder>/<name>/`; start logging there; switch the tracer on when `model.verbose` asks."""
    run_folder = Path(base_folder) / name
    run_folder.mkdir(parents=True, exist_ok=True)
    logger = setup_logging(LogConfig.from_yaml_logging(logging_config, run_folder, name))
    tracer = init_tracer(
        TraceConfig(
            enabled=model_config.verbose,
            output_dir=run_folder,
            every_n_steps=model_config.trace_every,
            first_steps=model_config.trace_first_steps,
            heartbeat_s=model_config.heartbeat_s,
        )
    )
    _quiet_library_progress_bars()
    return RunContext(run_folder, tracer, logger)


def _quiet_library_progress_bars() -> None:
    """diffusers/transformers print a bar per component load; ours say what is happening instead."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def dry_run_report(model_config, network_config=None) -> str:
    """`run.py --dry-run`: what the model class says about the checkpoint (LTX-2: its version, each component
    built on the meta device), then the memory plan. No weights are read."""
    from toolkit.extensions import load_model_class

    check = getattr(load_model_class(model_config.arch), "checkpoint_report", None)
    lines = list(check(model_config)) if callable(check) else []
    return "\n".join([*lines, memory_plan_report(model_config, network_config)])


def memory_plan_report(model_config, network_config=None) -> str:
    """The memory plan of a process's settings, built from meta-device components (no weights read)."""
    from dataclasses import replace

    from toolkit.extensions import load_model_class
    from toolkit.memory_plan import MemoryPlanSettings, build_memory_plan, format_plan

    budget = int(model_config.vram_gb * 1024**3) if model_config.vram_gb else None
    settings = MemoryPlanSettings.from_config(model_config, network_config)
    version_of = getattr(load_model_class(model_config.arch), "checkpoint_version", None)
    if callable(version_of):
        settings = replace(settings, version=version_of(model_config))
    plan = build_memory_plan(settings, device_total_bytes=budget)
    return format_plan(plan)
