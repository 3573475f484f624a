"""The run folder and the per-process tracer, set up once at the start of a process."""

from __future__ import annotations

from pathlib import Path

from toolkit.trace import TraceConfig, init_tracer


def open_run(name: str, base_folder: str, model_config, logging_config):
    """Create `<base_folder>/<name>/`, switch the tracer on when `model.verbose` asks for it."""
    run_folder = Path(base_folder) / name
    run_folder.mkdir(parents=True, exist_ok=True)
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
    return run_folder, tracer


def _quiet_library_progress_bars() -> None:
    """diffusers/transformers print a bar per component load; ours say what is happening instead."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
