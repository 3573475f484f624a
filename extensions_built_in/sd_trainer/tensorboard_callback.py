"""The trainer's TensorBoard categories (01_Training ... 15_Configuration), written from callbacks.

Every TensorBoardMonitor method decides by itself whether this step is one
it writes (log_every, diagnostic_every, the on/off flags), so this class only
says what each category is made of for LTX-2.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.data import read_video
from toolkit.monitoring.tensorboard import Category

from .callbacks import StepDetails, StepResult, TrainingCallback

DIAGNOSTIC_CATEGORIES = (Category.DIFFUSION, Category.NOISE_ANALYSIS, Category.NOISE_VISUALIZATION)


class TensorBoardCallback(TrainingCallback):
    def __init__(self, monitor):
        self.monitor = monitor
        self._epoch_losses: list[float] = []

    def wants_details(self, step: int) -> bool:
        return any(self.monitor.should_log(step, category) for category in DIAGNOSTIC_CATEGORIES)

    def on_train_start(self, trainer) -> None:
        monitor = self.monitor
        monitor.log_configuration(trainer.job.config.model_dump(mode="json"))
        components = {name: module for name, module in trainer.model.components.items() if hasattr(module, "parameters")}
        monitor.log_model_architecture(trainer.step, components)

    def on_step_end(self, trainer, step: int, result: StepResult, details: StepDetails | None) -> None:
        monitor = self.monitor
        monitor.log_training(step, result.loss, result.video_loss, result.audio_loss)
        components = {
            "video": result.video_loss,
            "audio": result.audio_loss,
            "video_weighted": trainer.config.train.video_loss_weight * result.video_loss,
            "audio_weighted": trainer.config.train.audio_loss_weight * result.audio_loss,
            **result.aux_losses,
        }
        monitor.log_loss_components(step, components)
        monitor.log_learning_rate(step, result.lr, trainer.scheduler.state_dict())
        monitor.log_performance(step, result.seconds, result.samples / max(result.seconds, 1e-9), result.data_seconds)
        named = trainer.network.named_parameters()
        monitor.log_gradients(step, named)
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
            monitor.log_epoch_summary(epoch, {"loss": sum(self._epoch_losses) / len(self._epoch_losses), "steps": len(self._epoch_losses)})
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
        self.monitor.flush()
