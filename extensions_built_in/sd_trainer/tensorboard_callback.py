"""The trainer's metrics in seed 004's categories (01_Training ... 15_Configuration), written from callbacks.

Every TensorBoardMonitor method decides by itself whether this step is one
it writes (log_every, diagnostic_every, the on/off flags, whether TensorBoard
is on), so this class only says what each category is made of for LTX-2. The
numbers go into the logger's one metrics stream (metrics.jsonl, TensorBoard,
W&B); samples/s comes from the progress bar (`logger.update_progress`).
"""

from __future__ import annotations

from pathlib import Path

from toolkit.data import read_video
from toolkit.monitoring.tensorboard import Category, TensorBoardFlags, TensorBoardMonitor

from .callbacks import StepDetails, StepResult, TrainingCallback

DIAGNOSTIC_CATEGORIES = (Category.DIFFUSION, Category.NOISE_ANALYSIS, Category.NOISE_VISUALIZATION)


class TensorBoardCallback(TrainingCallback):
    def __init__(self, monitor: TensorBoardMonitor):
        self.monitor = monitor
        self._epoch_losses: list[float] = []

    @classmethod
    def for_run(cls, logger, logging_config) -> TensorBoardCallback:
        """The callback of a run: its logger's stream, at the frequencies of the `logging:` block."""
        return cls(TensorBoardMonitor(logger, TensorBoardFlags.from_logging_config(logging_config)))

    def wants_details(self, step: int) -> bool:
        return any(self.monitor.should_log(step, category) for category in DIAGNOSTIC_CATEGORIES)

    def on_train_start(self, trainer) -> None:
        monitor = self.monitor
        monitor.log_configuration(trainer.job.config.model_dump(mode="json"))
        components = {name: module for name, module in trainer.model.components.items() if hasattr(module, "parameters")}
        monitor.log_model_architecture(trainer.step, components)
        monitor.log_learning_rate_schedule(learning_rate_schedule(trainer.scheduler, trainer.config.train.steps, monitor.flags.log_every))

    def on_step_end(self, trainer, step: int, result: StepResult, details: StepDetails | None) -> None:
        monitor = self.monitor
        monitor.log_training(step, result.loss)
        monitor.log_loss_components(step, loss_components(trainer.config.train, result))
        monitor.log_learning_rate(step, result.lr, trainer.scheduler.state_dict())
        monitor.log_performance(step, result.seconds, result.data_seconds)
        named = list(trainer.network.named_parameters())
        applied_norms = result.gradients.applied_norms if result.gradients is not None else None
        monitor.log_gradients(step, named, result.grad_norm, applied_norms=applied_norms)
        monitor.log_parameter_stats(step, named)
        monitor.log_histograms(step, named)
        monitor.log_system(step)
        if details is not None:
            monitor.log_diffusion(step, details.sigmas, details.video_prediction, details.video_target)
            monitor.log_noise_analysis(step, details.video_prediction, details.video_target)
            monitor.log_noise_visualization(step, details.noisy_video, details.video_prediction, details.video_target)
        self._epoch_losses.append(result.loss)
        per_step = trainer.order.per_step  # clips per step over all processes
        epoch_size = trainer.order.count
        if (step + 1) * per_step // epoch_size > step * per_step // epoch_size:
            epoch = (step + 1) * per_step // epoch_size - 1
            summary = {"Loss": sum(self._epoch_losses) / len(self._epoch_losses), "Steps": len(self._epoch_losses)}
            monitor.log_epoch_summary(step, epoch, summary)
            self._epoch_losses = []

    def on_sample(self, trainer, step: int, paths: list[Path]) -> None:
        sample_config = trainer.config.sample
        for index, path in enumerate(paths):
            clip = read_video(path, sample_config.num_frames)
            audio = clip.audio.waveform.mean(0) if clip.audio is not None else None
            rate = clip.audio.sample_rate if clip.audio is not None else None
            prompt = trainer.sampler.prompts[index].prompt if index < len(trainer.sampler.prompts) else None
            self.monitor.log_sample(step, f"prompt_{index}", clip.frames, clip.fps, audio, rate, prompt=prompt)

    def on_train_end(self, trainer) -> None:
        self.monitor.logger.flush()  # the scalars still with the writer thread, then the metric sinks
        self.monitor.tensorboard.flush()  # and the media written straight to TensorBoard


def learning_rate_schedule(scheduler, steps: int, every: int) -> list[tuple[int, float]]:
    """The first param group's learning rate at every ``every``-th step of the run (and the last),
    read from the scheduler's lambda without stepping it (diffusers' schedules are LambdaLR)."""
    base_lr, lr_lambda = scheduler.base_lrs[0], scheduler.lr_lambdas[0]
    points = sorted(set(range(0, steps, every)) | {steps - 1})
    return [(step, base_lr * lr_lambda(step)) for step in points]


def loss_components(train, result: StepResult) -> dict[str, float]:
    """The terms of the loss: video, audio, their weighted shares when a weight is not 1 (with
    weight 1 the share is the same number), and the auxiliary losses."""
    components = {"Video": result.video_loss, "Audio": result.audio_loss}
    if train.video_loss_weight != 1:
        components["Video_Weighted"] = train.video_loss_weight * result.video_loss
    if train.audio_loss_weight != 1:
        components["Audio_Weighted"] = train.audio_loss_weight * result.audio_loss
    return {**components, **result.aux_losses}
