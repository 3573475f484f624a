"""The trainer's side of resuming: the save it resumes from, checked against the config before loading, and said.

`resume_point` picks the newest save that verifies (checkpoints.choose_resume, damaged newer ones
renamed by the main process) and compares its config with this one (resume_check.py): a change a
resume cannot take is a ConfigError before any model loads; the others are returned, to be said
once the log is open (`report_resume_point`) and applied where loading a state would undo them
(`use_configured_lr`). The `Resuming` mixin of SDTrainer opens the run from the chosen save
(`_open_run`) and loads it (`_resume`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ConfigError
from toolkit.run_setup import RunContext, open_run

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


def report_resume_point(plan: ResumePlan, logger, tracer) -> None:
    """Say which saves were found damaged (and kept), and which settings the resumed run changes."""
    for folder, problem in plan.damaged:
        logger.warning("Damaged save %s: %s. It is kept there; resuming from %s instead.", folder, problem, plan.folder)
        tracer.event("damaged_save", folder=folder, problem=problem, resume_from=plan.folder)
    if plan.changes:
        logger.info("Resuming from step %d with changed settings: %s", plan.step, describe_changes(plan.changes))
        tracer.event("resume_changes", step=plan.step, changes=[change.describe() for change in plan.changes])


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


class Resuming:
    """Choosing the save to resume from as the run opens, and loading it into the trainer's LoRA, EMA, optimizer,
    schedule and RNGs; mixed into SDTrainer."""

    def _open_run(self) -> tuple[ResumePlan, RunContext]:
        """The save to resume from (a change it cannot take stops the run here, before loading), then the run's
        log and trace, which say what the resume found."""
        with self.parallel.main_first():  # the main process renames damaged saves; the others then find the same one
            plan = resume_point(
                self.guard.run_folder, self.config, f"config.process[{self.process_index}]",
                str(self.job.config_path) if self.job.config_path else None, rename=self.parallel.is_main,
            )
        run = open_run(self.job.name, self.config.training_folder, self.config.model, self.config.logging, plan.step)
        self.run_folder, self.tracer, self.logger = run.folder, run.tracer, run.logger
        if self.lock is not None and self.lock.notice:
            self.logger.warning("%s", self.lock.notice)
        self.tracer.event("config_notes", **self.job.config.notes.trace_fields())
        self.parallel.describe(self.tracer, self.logger, self.config.train)
        report_resume_point(plan, self.logger, self.tracer)
        return plan, run

    def _resume(self, plan: ResumePlan) -> int:
        latest = plan.folder
        if latest is None:
            return 0
        state = checkpoints.load_training_state(latest)
        checkpoints.check_same_base_model(state.extra, self._model_metadata(), latest)
        self.network.load_state_dict(state.lora_state)
        if self.ema is not None:
            self._restore_ema(state.ema_state, state.step, latest)
        self.evaluation.restore(state.extra.get("evaluation"))
        self.optimizer.load_state_dict(state.optimizer_state)
        self.scheduler.load_state_dict(state.scheduler_state)
        if plan.changed("train.lr"):
            use_configured_lr(self.optimizer, self.scheduler, self.config.train.lr)
        if state.scaler_state and self.updates.scaler.is_enabled():
            self.updates.scaler.load_state_dict(state.scaler_state)
        checkpoints.restore_rng_state(state.rng_state)
        self.logger.info("Resuming %s from step %d (%s)", self.job.name, state.step, latest)
        self.tracer.event("resume", step=state.step, checkpoint=latest)
        return state.step

    def _restore_ema(self, ema_state, step: int, checkpoint: Path) -> None:
        if ema_state is not None:
            self.ema.load_state_dict(ema_state, updates=step)
            return
        self.ema.reset()
        self.logger.warning(
            "%s holds no EMA weights (train.ema_config.use_ema was off when it was saved); the EMA starts from "
            "the resumed LoRA weights", checkpoint,
        )
