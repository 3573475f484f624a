"""Evaluation during training: when it runs, what it reports, and the best LoRA (docs/evaluation.md).

The loss itself is `held_out_loss.HeldOutLoss`. Here: the schedule (before the first step,
every `train.eval_every` steps, after the last step; not on a step a stop request ends, and
not twice for one step across a resume), the raw weights and, with an EMA, the EMA weights
too; the numbers in the one metrics stream under seed 004's `06_Diffusion` category (the
loss of the denoiser's prediction at given noise levels is a diffusion metric; `01_Training`
stays the loss of the training steps), the progress bar's postfix, the log, the `evaluate`
trace span with its cost; and with `save.keep_best` the LoRA of the lowest loss so far.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from toolkit.logging.events import publish_event, trace_prints
from toolkit.monitoring.tensorboard import Category

from . import checkpoints
from .checkpoint_files import best_filename
from .lora_metadata import file_metadata
from .held_out_loss import HeldOutLoss, HeldOutLosses

EVAL_TIME = f"{Category.PERFORMANCE}/Eval_Time_s"
_NAMES = {"raw": "Eval_Loss", "ema": "Eval_Loss_EMA"}


def metric_names(weights: str, losses: HeldOutLosses) -> dict[str, float]:
    """`06_Diffusion/Eval_Loss[_EMA]` (video and audio weighted as in training), `..._Video`, `..._Audio`,
    and each of them per level (`06_Diffusion/Eval_Loss/sigma_0.50`)."""
    base = f"{Category.DIFFUSION}/{_NAMES[weights]}"
    parts = {base: (losses.loss, losses.per_level), f"{base}_Video": (losses.video_loss, losses.video)}
    if losses.audio is not None:
        parts[f"{base}_Audio"] = (losses.audio_loss, losses.audio)
    metrics: dict[str, float] = {}
    for name, (mean, per_level) in parts.items():
        metrics[name] = mean
        metrics.update({f"{name}/sigma_{sigma:.2f}": value for sigma, value in zip(losses.sigmas, per_level)})
    return metrics


class Evaluation:
    """The evaluations of one run; with no held-out clips every method does nothing."""

    @classmethod
    def for_trainer(cls, trainer) -> Evaluation:
        """The evaluation of a trainer set up to its held-out clips, LoRA, EMA and logger."""
        train, held_out = trainer.config.train, trainer.data.held_out
        predict = trainer.step_loss.predict
        loss = HeldOutLoss(trainer.model, held_out, train, trainer.parallel, predict) if held_out else None
        best = BestLora(_best_lora_writer(trainer)) if trainer.config.save.keep_best else None
        if loss is not None:
            publish_event(
                trainer.tracer, trainer.logger, "held_out",
                lambda: (
                    f"Evaluating {loss.clips} held-out clips (never trained on) every {train.eval_every} steps at "
                    f"noise levels {', '.join(f'{sigma:.2f}' for sigma in loss.sigmas)}: "
                    + ", ".join(Path(example.path).name for example in held_out)
                ),
                lambda: {
                    "clips": [str(example.path) for example in held_out], "levels": list(loss.sigmas),
                    "processes": trainer.parallel.world_size, "clips_here": len(loss.share),
                },
            )
        return cls(
            loss, train.eval_every, train.steps, trainer.ema, best, trainer.logger, trainer.tracer,
            log_time=trainer.config.logging.profiling,  # as 05_Performance's step times
        )

    def __init__(
        self, loss: HeldOutLoss | None, every: int | None, steps: int, ema, best, logger, tracer, log_time: bool = True
    ):
        self.loss = loss
        self.log_time = log_time
        self.every = every
        self.steps = steps
        self.ema = ema
        self.best = best  # BestLora with save.keep_best, else None
        self.logger = logger
        self.tracer = tracer
        self.last: dict[str, HeldOutLosses] = {}
        self.last_step: int | None = None
        self.count = 0  # evaluations made by this process (samples the trace of their forwards)

    @property
    def on(self) -> bool:
        return self.loss is not None

    def before_first_step(self, step: int) -> None:
        """Evaluate the weights training starts from, unless the checkpoint resumed from holds that evaluation."""
        if self.on and self.last_step != step:
            self.evaluate(step)

    def after_step(self, step: int) -> None:
        """Evaluate after step `step` when it is an `eval_every` multiple or the last step."""
        if self.on and (step % self.every == 0 or step == self.steps):
            self.evaluate(step)

    def evaluate(self, step: int) -> dict[str, HeldOutLosses]:
        """The losses of the raw weights (and the EMA's) at `step`, reported everywhere they show."""
        weights = ["raw", "ema"] if self.ema is not None else ["raw"]
        with self.tracer.span(
            "evaluate", step=step, clips=self.loss.clips, levels=list(self.loss.sigmas), weights=weights,
            forwards=self.loss.forwards * len(weights), batch_size=self.loss.batch_size,
        ) as span:
            started = time.perf_counter()
            with self.tracer.step_scope(self.count):  # the forwards trace like a step's: the first few, then sampled
                results = {kind: self._losses(kind) for kind in weights}
            seconds = time.perf_counter() - started
            span.set(lambda: {kind: _trace_fields(losses) for kind, losses in results.items()}, seconds=seconds)
        self.count += 1
        self.last, self.last_step = results, step
        metrics = {name: value for kind, losses in results.items() for name, value in metric_names(kind, losses).items()}
        self.logger.log_metrics({**metrics, **({EVAL_TIME: seconds} if self.log_time else {})}, step=step)
        say = self.logger.debug if trace_prints(self.tracer) else self.logger.info  # the span's end line says it
        say(
            "Evaluation at step %d: %s (%d held-out clips x %d noise levels, %.1f s)",
            step, "; ".join(f"{kind} {_summary(losses)}" for kind, losses in results.items()),
            self.loss.clips, len(self.loss.sigmas), seconds,
        )
        if self.best is not None:
            self.best.consider(step, {kind: losses.loss for kind, losses in results.items()})
        return results

    def _losses(self, kind: str) -> HeldOutLosses:
        weights = self.ema.applied("evaluation") if kind == "ema" else contextlib.nullcontext()
        with weights:
            return self.loss()

    def postfix(self) -> dict[str, str]:
        """The latest evaluation loss for the progress bar (the EMA's when there is one)."""
        if not self.last:
            return {}
        kind = "ema" if "ema" in self.last else "raw"
        return {"eval": f"{self.last[kind].loss:.4f}"}

    def state(self) -> dict:
        """What state.json records: the latest evaluation's step and losses, and the best so far."""
        if not self.on or self.last_step is None:
            return {}
        record = {"step": self.last_step, **{_NAMES[kind]: losses.loss for kind, losses in self.last.items()}}
        if self.best is not None:
            record["best"] = self.best.state()
        return {"evaluation": record}

    def summary(self) -> str:
        """The run's last line about evaluation: the lowest loss and its file, with keep_best."""
        if self.best is None or not self.best.record:
            return ""
        return "".join(
            f"\n  lowest evaluation loss{' (EMA)' if kind == 'ema' else ''}: {entry['loss']:.4f} at step "
            f"{entry['step']}: {entry['file']}"
            for kind, entry in self.best.record.items()
        )

    def restore(self, saved: dict | None) -> None:
        """Resume from a checkpoint's state.json `evaluation` record (absent before the first evaluation)."""
        if not self.on or not saved:
            return
        self.last_step = saved.get("step")
        if self.best is not None:
            self.best.restore(saved.get("best") or {})


class BestLora:
    """`save.keep_best`: the LoRA (and the EMA's) of the lowest evaluation loss so far, rewritten when beaten.

    `write(kind, step, loss)` saves the adapter's current weights of that kind (on the main process;
    every process keeps the same record) and returns the file.
    """

    def __init__(self, write: Callable[[str, int, float], Path]):
        self.write = write
        self.record: dict[str, dict] = {}

    def consider(self, step: int, losses: dict[str, float]) -> None:
        for kind, loss in losses.items():
            best = self.record.get(kind)
            if loss == loss and (best is None or loss < best["loss"]):  # a NaN loss is never the best
                path = self.write(kind, step, loss)
                self.record[kind] = {"step": step, "loss": loss, "file": path.name}

    def state(self) -> dict[str, dict]:
        return {kind: dict(entry) for kind, entry in self.record.items()}

    def restore(self, saved: dict[str, dict]) -> None:
        self.record = {kind: dict(entry) for kind, entry in saved.items()}


def _best_lora_writer(trainer) -> Callable[[str, int, float], Path]:
    """Writes the adapter's weights (the EMA's for kind "ema") as the best LoRA, through the model's save path
    (`save.format`, `save.dtype`, atomic) like every LoRA the run writes; on the main process only."""

    def write(kind: str, step: int, loss: float) -> Path:
        name = trainer.job.name
        path = trainer.run_folder / best_filename(name, kind, ema_on=trainer.ema is not None)
        if trainer.parallel.is_main:
            lora_state = trainer.ema.state_dict() if kind == "ema" else trainer.network.state_dict()
            save_config = trainer.config.save
            metadata = {"eval_loss": loss, **trainer._model_metadata(),
                        **file_metadata(trainer.run_metadata, trainer.model.base_model_names(), save_config.format, step),
                        **({"ema": kind == "ema"} if trainer.ema is not None else {})}
            checkpoints.save_user_lora(
                trainer.model, path, lora_state, save_config, name, step, trainer.network.alpha, trainer.network.rank,
                metadata,
            )
        return path

    return write


def _summary(losses: HeldOutLosses) -> str:
    audio = f", audio {losses.audio_loss:.4f}" if losses.audio_loss is not None else ""
    return f"loss {losses.loss:.4f} (video {losses.video_loss:.4f}{audio})"


def _trace_fields(losses: HeldOutLosses) -> dict:
    return {
        "loss": losses.loss,
        "video_loss": losses.video_loss,
        "audio_loss": losses.audio_loss,
        "per_level": {f"{sigma:.2f}": value for sigma, value in zip(losses.sigmas, losses.per_level)},
    }
