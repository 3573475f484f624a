"""The run folder, the per-process tracer and the logger, set up once at the start of a process.

Every process type (sd_trainer, generate, an extension's own) opens its run here, so processes
share this toolkit code and never import one another.
"""

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


def _quiet_library_progress_bars() -> None:
    """diffusers/transformers print a bar per component load; ours say what is happening instead."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
