"""How a run ends, said: the summary of a run that trained, and a rerun of a run that already reached
`train.steps` (said, not retrained)."""

from __future__ import annotations

from pathlib import Path

from toolkit.run_setup import RunContext

from .checkpoints import lora_filename


def report_finished(run: RunContext, name: str, steps: int, saved_step: int, checkpoint: Path) -> dict[str, Path]:
    """A rerun of a finished run: say so and how to go on, without loading or saving anything.

    Returns the run's files as `SDTrainer.saved` holds them (the final LoRA, the newest checkpoint).
    """
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


def summarise_run(logger, step: int, skipped_updates: int, data, saved: dict[str, Path], evaluation: str) -> None:
    """The run's last lines: steps (and those skipped as non-finite), clips trained on and skipped (each with its
    reason), the final LoRA, and with evaluation the lowest loss and its file (`evaluation`, "" without)."""
    skipped = data.skipped
    logger.info(
        "Done: %d steps%s, %d clips trained on, %d skipped%s. LoRA: %s",
        step,
        f" ({skipped_updates} skipped as non-finite)" if skipped_updates else "",
        len(data.examples),
        len(skipped),
        "".join(f"\n  skipped {path}: {reason}" for path, reason in skipped),
        saved.get("final"),
    )
    if evaluation:
        logger.info("Evaluation:%s", evaluation)
