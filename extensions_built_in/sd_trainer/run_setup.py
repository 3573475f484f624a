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


def open_run(name: str, base_folder: str, model_config, logging_config, resume_from_step: int = 0) -> RunContext:
    """Create `<base_folder>/<name>/`; start logging there; switch the tracer on when `model.verbose` asks.

    `resume_from_step` goes into the trace's `trace_start` record, which marks each start of a run
    whose trace files are appended to across resumes.
    """
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
            resume_from_step=resume_from_step,
        )
    )
    _quiet_library_progress_bars()
    return RunContext(run_folder, tracer, logger)


def report_finished(run: RunContext, name: str, steps: int, saved_step: int, checkpoint: Path) -> dict[str, Path]:
    """A rerun of a finished run: say so and how to go on, without loading or saving anything.

    Returns the run's files as `SDTrainer.saved` holds them (the final LoRA, the newest checkpoint).
    """
    from .checkpoints import lora_filename

    final = run.folder / lora_filename(name, None)
    lora = final if final.is_file() else run.folder / lora_filename(name, saved_step)
    run.tracer.event("run_finished", step=saved_step, steps=steps, lora=lora, checkpoint=checkpoint)
    run.logger.info(
        "%s is already finished: it reached step %d of train.steps %d (%s). LoRA: %s. To train on, raise "
        "train.steps (it resumes from step %d); to start over, give the run a new name (config.name) or "
        "another training_folder.",
        name, saved_step, steps, checkpoint, lora, saved_step,
    )
    run.logger.finish()
    return {"final": lora, "checkpoint": checkpoint}


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
    from toolkit.distributed import world_size

    from .distributed_training import data_parallel_plan_lines

    return "\n".join([format_plan(plan), *data_parallel_plan_lines(plan.lora.params, world_size())])
