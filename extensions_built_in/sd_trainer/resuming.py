"""The trainer's side of resuming: the save it resumes from, checked against the config before loading, and said.

`resume_point` picks the newest save that verifies (checkpoints.choose_resume, damaged newer ones
renamed by the main process) and compares its config with this one (resume_check.py): a change a
resume cannot take is a ConfigError before any model loads; the others are returned, to be said
once the log is open (`report_resume_point`) and applied where loading a state would undo them
(`use_configured_lr`). The trainer holds the plan (`trainer.resume`) from the moment the run opens and,
once its LoRA, EMA, optimizer and schedule exist, loads the save into them (`ResumePlan.load_into`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ConfigError

from . import checkpoints
from .resume_check import SettingChange, describe_changes, read_saved_run, resume_problems, setting_changes


@dataclass
class ResumePlan:
    """Where a run starts: the save (None: step 0), its step, the damaged saves passed over, the changed settings."""

    folder: Path | None
    step: int = 0
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    changes: list[SettingChange] = field(default_factory=list)

    def changed(self, key: str) -> bool:
        return any(change.key == key for change in self.changes)

    def report(self, logger, tracer) -> None:
        """Say which saves were found damaged (and kept), and which settings the resumed run changes."""
        for folder, problem in self.damaged:
            logger.warning("Damaged save %s: %s. It is kept there; resuming from %s instead.", folder, problem, self.folder)
            tracer.event("damaged_save", folder=folder, problem=problem, resume_from=self.folder)
        if self.changes:
            logger.info("Resuming from step %d with changed settings: %s", self.step, describe_changes(self.changes))
            tracer.event("resume_changes", step=self.step, changes=[change.describe() for change in self.changes])

    def load_into(
        self, *, network, ema, evaluation, optimizer, scheduler, scaler, model_metadata: dict, lr: float, name: str,
        logger, tracer,
    ) -> int:
        """Load the save into the run's LoRA (and EMA), evaluation record, optimizer, schedule (at the configured
        `lr` when the resume changed it), grad scaler and RNGs; returns the step to go on from (0: nothing to load).
        A save of another base model version is refused (`checkpoints.check_same_base_model`)."""
        if self.folder is None:
            return 0
        state = checkpoints.load_training_state(self.folder)
        checkpoints.check_same_base_model(state.extra, model_metadata, self.folder)
        network.load_state_dict(state.lora_state)
        if ema is not None:
            _restore_ema(ema, state.ema_state, state.step, self.folder, logger)
        evaluation.restore(state.extra.get("evaluation"))
        optimizer.load_state_dict(state.optimizer_state)
        scheduler.load_state_dict(state.scheduler_state)
        if self.changed("train.lr"):
            use_configured_lr(optimizer, scheduler, lr)
        if state.scaler_state and scaler.is_enabled():
            scaler.load_state_dict(state.scaler_state)
        checkpoints.restore_rng_state(state.rng_state)
        logger.info("Resuming %s from step %d (%s)", name, state.step, self.folder)
        tracer.event("resume", step=state.step, checkpoint=self.folder)
        return state.step


def resume_point(run_folder: Path, config, where: str, source: str | None, rename: bool) -> ResumePlan:
    """The save to resume from and what changed since it; ConfigError for a change it cannot take."""
    chosen = checkpoints.choose_resume(run_folder, rename=rename)
    if chosen.folder is None:
        return ResumePlan(None)
    current = config.model_dump(mode="json")
    saved = read_saved_run(chosen.folder, config.type, config.training_folder)
    if saved is None:
        return ResumePlan(chosen.folder, checkpoints.saved_step(chosen.folder), chosen.damaged)
    problems = resume_problems(saved, current, where)
    if problems:
        raise ConfigError(problems, source=source)
    return ResumePlan(chosen.folder, saved.step, chosen.damaged, setting_changes(saved.process, current))


def use_configured_lr(optimizer, scheduler, lr: float) -> None:
    """After loading a save, run at the configured `train.lr` from where the schedule is.

    optimizer.load_state_dict and scheduler.load_state_dict bring back the saved learning rate; a
    resume that changed train.lr means the new one, scaled by the schedule at the resumed step.
    """
    scheduler.base_lrs = [lr for _ in scheduler.base_lrs]
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"] = lr
        group["lr"] = lr * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports next


def _restore_ema(ema, ema_state, step: int, checkpoint: Path, logger) -> None:
    if ema_state is not None:
        ema.load_state_dict(ema_state, updates=step)
        return
    ema.reset()
    logger.warning(
        "%s holds no EMA weights (train.ema_config.use_ema was off when it was saved); the EMA starts from "
        "the resumed LoRA weights", checkpoint,
    )
