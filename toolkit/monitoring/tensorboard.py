"""Seed 004's 15 TensorBoard categories, computed from what a trainer already has.

Every number goes into the logger's one metrics stream (``logger.log_metrics``)
under its TensorBoard tag (``01_Training/Loss``), so metrics.jsonl, TensorBoard
and W&B get it once, under one name, at the step it belongs to. What is not a
number (histograms, videos, audio, text) goes to the same TensorBoard writer
(``logger.tensorboard``). Each method decides itself whether this step is
written: the per-step categories every ``log_every`` steps, the diagnostic
ones every ``diagnostic_every``, a category whose flag is off never, and the
ones that only make sense in TensorBoard only when it is on. So a loop calls
every method on every step without an ``if``. Nothing here knows the trainer
or LTX-2.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import nn

from toolkit.config.logging_config import LoggingConfig
from toolkit.logging import UnifiedLogger
from toolkit.monitoring import tensorboard_values as values_of
from toolkit.monitoring.system_stats import machine_load
from toolkit.monitoring.tensorboard_values import NamedParameters, TensorBoardError, block_of_parameter

SAMPLE_PREVIEW_SIDE = 256  # pixels, the longest side of a sample's video in TensorBoard (see log_sample)

__all__ = ["Category", "TensorBoardError", "TensorBoardFlags", "TensorBoardMonitor", "block_of_parameter"]


class Category:
    """Seed 004's tag prefixes; TensorBoard sorts its sections by them."""

    TRAINING = "01_Training"
    LOSS_COMPONENTS = "02_Loss_Components"
    EPOCH_SUMMARY = "03_Epoch_Summary"
    LEARNING_RATE = "04_Learning_Rate"
    PERFORMANCE = "05_Performance"
    DIFFUSION = "06_Diffusion"
    NOISE_ANALYSIS = "07_Noise_Analysis"
    MODEL_ARCHITECTURE = "08_Model_Architecture"
    PARAMETER_STATS = "09_Parameter_Stats"
    HISTOGRAMS = "10_Parameter_Histograms"
    GRADIENTS = "11_Gradient_Stats"
    SAMPLES = "12_Generated_Samples"
    NOISE_VISUALIZATION = "13_Noise_Visualization"
    SYSTEM = "14_System"
    CONFIGURATION = "15_Configuration"

    ALL = (
        TRAINING, LOSS_COMPONENTS, EPOCH_SUMMARY, LEARNING_RATE, PERFORMANCE, DIFFUSION, NOISE_ANALYSIS,
        MODEL_ARCHITECTURE, PARAMETER_STATS, HISTOGRAMS, GRADIENTS, SAMPLES, NOISE_VISUALIZATION, SYSTEM,
        CONFIGURATION,
    )  # fmt: skip
    EVERY_LOG_STEP = (TRAINING, LOSS_COMPONENTS, LEARNING_RATE, PERFORMANCE, GRADIENTS, SYSTEM)
    EVERY_DIAGNOSTIC_STEP = (DIFFUSION, NOISE_ANALYSIS, PARAMETER_STATS, HISTOGRAMS, NOISE_VISUALIZATION)
    # Pictures, text or costly diagnostics: only worth making when TensorBoard shows them.
    TENSORBOARD_ONLY = (
        DIFFUSION, NOISE_ANALYSIS, MODEL_ARCHITECTURE, PARAMETER_STATS, HISTOGRAMS, SAMPLES, NOISE_VISUALIZATION,
        CONFIGURATION,
    )  # fmt: skip


@dataclass
class TensorBoardFlags:
    """How often each category is written, and which expensive ones are on.

    Epoch summaries, samples, the architecture and the configuration are
    written whenever they are called: the caller already chose when.
    ``smoothing_window`` is how many steps ``01_Training/Loss_Smoothed`` averages.
    """

    log_every: int = 10
    diagnostic_every: int = 50
    histograms: bool = True  # 10_Parameter_Histograms
    parameter_tracking: bool = True  # 09_Parameter_Stats
    video_logging: bool = True  # 12_Generated_Samples
    noise_visualization: bool = True  # 13_Noise_Visualization
    profiling: bool = True  # 05_Performance's step times and 14_System
    smoothing_window: int = 100

    def __post_init__(self) -> None:
        for name in ("log_every", "diagnostic_every", "smoothing_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TensorBoardError(f"TensorBoardFlags.{name} is {value!r}; it must be an integer >= 1 (steps).")

    @classmethod
    def from_logging_config(cls, block: LoggingConfig | None) -> TensorBoardFlags:
        """The flags of the YAML's `logging:` block (its defaults when None)."""
        block = block if block is not None else LoggingConfig()
        return cls(
            log_every=block.log_every,
            diagnostic_every=block.diagnostic_every,
            histograms=block.histograms,
            parameter_tracking=block.parameter_tracking,
            video_logging=block.video_logging,
            noise_visualization=block.noise_visualization,
            profiling=block.profiling,
            smoothing_window=block.metrics_window,
        )

    def category_on(self, category: str) -> bool:
        switches = {
            Category.HISTOGRAMS: self.histograms,
            Category.PARAMETER_STATS: self.parameter_tracking,
            Category.SAMPLES: self.video_logging,
            Category.NOISE_VISUALIZATION: self.noise_visualization,
            Category.PERFORMANCE: self.profiling,
            Category.SYSTEM: self.profiling,
        }
        return switches.get(category, True)

    def every(self, category: str) -> int | None:
        """Steps between writes of ``category``; None when it is written on each call."""
        if category in Category.EVERY_LOG_STEP:
            return self.log_every
        if category in Category.EVERY_DIAGNOSTIC_STEP:
            return self.diagnostic_every
        return None


class TensorBoardMonitor:
    """Files a run's numbers and media under the 15 categories, through ``logger``.

    Numbers reach every metrics sink of the logger (metrics.jsonl, TensorBoard,
    W&B); media reach its TensorBoard writer. Without TensorBoard (and on
    other ranks) the ``Category.TENSORBOARD_ONLY`` categories are not even
    computed.
    """

    def __init__(self, logger: UnifiedLogger, flags: TensorBoardFlags | None = None) -> None:
        self.logger = logger
        self.flags = flags if flags is not None else TensorBoardFlags()
        self._recent_losses: deque[float] = deque(maxlen=self.flags.smoothing_window)

    @property
    def tensorboard(self) -> Any:
        """The logger's TensorBoard writer (a disabled one without TensorBoard)."""
        return self.logger.tensorboard

    def should_log(self, step: int, category: str) -> bool:
        """Whether ``category`` is written at ``step``."""
        if not self.logger.is_main_process or not self.flags.category_on(category):
            return False
        if category in Category.TENSORBOARD_ONLY and not self.tensorboard.enabled:
            return False
        every = self.flags.every(category)
        return every is None or step % every == 0

    # 01-05: scalars the loop already has

    def log_training(self, step: int, loss: Any, video_loss: Any = None, audio_loss: Any = None) -> None:
        """Loss, its video and audio parts, and ``Loss_Smoothed``: the mean of the last
        ``smoothing_window`` losses (call on every step so the mean sees each one)."""
        self._recent_losses.append(values_of.scalar("loss", loss))
        if self.should_log(step, Category.TRAINING):
            smoothed = sum(self._recent_losses) / len(self._recent_losses)
            values = {"Loss": loss, "Loss_Smoothed": smoothed, "Video_Loss": video_loss, "Audio_Loss": audio_loss}
            self._scalars(Category.TRAINING, step, values)

    def log_loss_components(self, step: int, components: Mapping[str, Any]) -> None:
        if self.should_log(step, Category.LOSS_COMPONENTS):
            self._scalars(Category.LOSS_COMPONENTS, step, components)

    def log_epoch_summary(self, step: int, epoch: int, summary: Mapping[str, Any]) -> None:
        """Per-epoch averages, at the training step that ended the epoch (``Epoch`` says which)."""
        if self.should_log(step, Category.EPOCH_SUMMARY):
            self._scalars(Category.EPOCH_SUMMARY, step, {"Epoch": epoch, **summary})

    def log_learning_rate(self, step: int, lr: float | Iterable[float], scheduler_state: dict | None = None) -> None:
        """``Learning_Rate`` (``Learning_Rate/Group_i`` for several param groups) and the numeric scheduler state."""
        if not self.should_log(step, Category.LEARNING_RATE):
            return
        rates = [lr] if isinstance(lr, (int, float)) else list(lr)
        values = {"Learning_Rate": rates[0]} if len(rates) == 1 else {f"Learning_Rate/Group_{i}": r for i, r in enumerate(rates)}
        for key, value in values_of.flatten(scheduler_state or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"Scheduler/{key}"] = value
        self._scalars(Category.LEARNING_RATE, step, values)

    def log_learning_rate_schedule(self, schedule: Sequence[tuple[int, float]]) -> None:
        """The learning rate the scheduler will give at each future step, as ``04_Learning_Rate/Schedule``.

        A forecast, not a measurement: written to TensorBoard only, once, so
        metrics.jsonl keeps what happened, in step order.
        """
        writer = self.tensorboard.writer
        if writer is None or not self.logger.is_main_process:
            return
        for step, rate in schedule:
            writer.add_scalar(f"{Category.LEARNING_RATE}/Schedule", rate, step)
        writer.flush()

    def log_performance(self, step: int, step_time_s: float, data_time_s: float | None = None) -> None:
        """The optimizer step's own time and the part spent assembling the batch (samples/s and
        the time between steps come from the progress bar: ``logger.update_progress``)."""
        if not self.should_log(step, Category.PERFORMANCE):
            return
        values = {"Step_Time_s": step_time_s}
        if data_time_s is not None:
            values["Data_Time_s"] = data_time_s
            values["Data_Time_Share"] = data_time_s / max(step_time_s, 1e-9)
        self._scalars(Category.PERFORMANCE, step, values)

    # 06-07: how well the model predicts its target

    def log_diffusion(
        self, step: int, timesteps: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, buckets: int = 4
    ) -> None:
        """``Noise_Prediction_MSE`` and ``Signal_to_Noise_Ratio`` (dB of the prediction: target power over
        error power), overall and per timestep bucket.

        ``timesteps`` are per-sample sigmas in [0, 1], shape (B,); buckets
        split [0, 1] evenly and a bucket without a sample this step gets no point.
        """
        if not self.should_log(step, Category.DIFFUSION):
            return
        values_of.same_shape(pred, target, "log_diffusion")
        sigmas = timesteps.detach().float().flatten().cpu()
        if sigmas.numel() != pred.shape[0]:
            raise TensorBoardError(
                f"log_diffusion got {sigmas.numel()} timesteps for a batch of {pred.shape[0]}; pass one per sample."
            )
        if sigmas.numel() and (sigmas.min() < 0 or sigmas.max() > 1):
            raise TensorBoardError(
                f"log_diffusion expects timesteps as sigmas in [0, 1], got {sigmas.min():.4g}..{sigmas.max():.4g}; "
                "divide by the scheduler's num_train_timesteps first."
            )
        self._scalars(Category.DIFFUSION, step, values_of.diffusion_values(sigmas, pred, target, buckets))

    def log_noise_analysis(self, step: int, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Mean and std of prediction and target, their correlation and std ratio."""
        if self.should_log(step, Category.NOISE_ANALYSIS):
            values_of.same_shape(pred, target, "log_noise_analysis")
            self._scalars(Category.NOISE_ANALYSIS, step, values_of.noise_analysis_values(pred, target))

    # 08-11: the model's parameters and gradients

    def log_model_architecture(self, step: int, components: Mapping[str, nn.Module]) -> None:
        """Parameter counts per component and the trainable share, plus a table as text.

        Totals count a parameter shared by two components once.
        """
        if not self.should_log(step, Category.MODEL_ARCHITECTURE):
            return
        values, table = values_of.architecture_values(components)
        self._scalars(Category.MODEL_ARCHITECTURE, step, values)
        self.tensorboard.writer.add_text(f"{Category.MODEL_ARCHITECTURE}/Summary", table, step)

    def log_parameter_stats(self, step: int, named_params: NamedParameters) -> None:
        """Norm of each trainable parameter (the LoRA weights), and their total, mean and max."""
        if not self.should_log(step, Category.PARAMETER_STATS):
            return
        names, tensors = values_of.trainable(named_params)
        norms = values_of.norms(tensors)
        values = {f"Norm/{name}": norm for name, norm in zip(names, norms)}
        values["Norm_Total"] = sum(norm * norm for norm in norms) ** 0.5
        values["Norm_Mean"] = sum(norms) / len(norms) if norms else 0.0
        values["Norm_Max"] = max(norms, default=0.0)
        self._scalars(Category.PARAMETER_STATS, step, values)

    def log_histograms(self, step: int, named_params: NamedParameters) -> None:
        """Weight and gradient histograms of the trainable parameters (frozen base weights are skipped)."""
        if not self.should_log(step, Category.HISTOGRAMS):
            return
        tensors = {}
        for name, param in zip(*values_of.trainable(named_params)):
            tensors[f"{Category.HISTOGRAMS}/Weights/{name}"] = param
            if param.grad is not None:
                tensors[f"{Category.HISTOGRAMS}/Gradients/{name}"] = param.grad
        self.tensorboard.add_histograms(values_of.host_copies(tensors), step)

    def log_gradients(
        self,
        step: int,
        named_params: NamedParameters,
        total_norm: float,
        block_of: Callable[[str], str] | None = None,
        applied_norms: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        """``Total_Gradient_Norm``: the norm before clipping (what ``clip_grad_norm_`` returns);
        ``Block_Gradient_Norm/<block>``: per block, of the gradients as applied (after clipping);
        ``Params_Without_Grad``: trainable parameters that got no gradient.

        ``block_of`` maps a parameter name to its block; the default cuts the
        name after its first numeric index (``transformer_blocks.3``).
        ``applied_norms`` gives each gradient's norm after clipping by parameter name, when the caller
        already has them (the trainer's clipping computes them); otherwise they are computed here.
        """
        if not self.should_log(step, Category.GRADIENTS):
            return
        block_of = block_of or block_of_parameter
        names, params = values_of.trainable(named_params)
        if applied_norms is not None:
            by_name = applied_norms()
            with_grad = [(name, by_name[name]) for name in names if name in by_name]
        else:
            grads = [(name, param.grad) for name, param in zip(names, params) if param.grad is not None]
            with_grad = list(zip((name for name, _ in grads), values_of.norms([grad for _, grad in grads])))
        block_squares: dict[str, float] = {}
        for name, norm in with_grad:
            block_squares[block_of(name)] = block_squares.get(block_of(name), 0.0) + norm * norm
        values: dict[str, float] = {f"Block_Gradient_Norm/{block}": square**0.5 for block, square in block_squares.items()}
        values["Total_Gradient_Norm"] = total_norm
        values["Params_Without_Grad"] = len(names) - len(with_grad)
        self._scalars(Category.GRADIENTS, step, values)

    # 12-13: videos and sound

    def log_sample(
        self,
        step: int,
        name: str,
        frames: torch.Tensor,
        fps: float,
        audio: torch.Tensor | None = None,
        sample_rate: int | None = None,
        prompt: str | None = None,
    ) -> None:
        """A generated clip: uint8 frames (T, H, W, 3) as a video (``add_video``, encoded by moviepy) at most
        SAMPLE_PREVIEW_SIDE pixels on its longest side, mono audio (samples,) in [-1, 1], and the prompt as text.

        The video is a preview: the sample itself is the run's mp4. add_video stores a GIF, encoded in this
        thread: 121 frames at 768x512 took 9.9 s and made a 54 MB event per prompt and sampling; at 256 px
        on the longest side, 1.1 s and 6 MB."""
        if not self.should_log(step, Category.SAMPLES):
            return
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise TensorBoardError(
                f"log_sample({name!r}) needs uint8 frames shaped (T, H, W, 3), got {frames.dtype} "
                f"{tuple(frames.shape)}; convert with (video.clamp(0, 1) * 255).to(torch.uint8) in THWC order."
            )
        tag, writer = f"{Category.SAMPLES}/{name}", self.tensorboard.writer
        preview = values_of.sample_preview(frames.detach().cpu(), SAMPLE_PREVIEW_SIDE)
        writer.add_video(f"{tag}/Video", preview.permute(0, 3, 1, 2).unsqueeze(0), step, fps=fps)
        if audio is not None:
            if audio.ndim != 1 or sample_rate is None:
                raise TensorBoardError(
                    f"log_sample({name!r}) needs mono audio shaped (samples,) and its sample_rate, got "
                    f"{tuple(audio.shape)} at {sample_rate}; mix channels down with audio.mean(0)."
                )
            writer.add_audio(f"{tag}/Audio", audio.detach().float().cpu().clamp(-1, 1), step, sample_rate)
        if prompt is not None:
            writer.add_text(f"{tag}/Prompt", prompt, step)
        self.tensorboard.flush_if_due(step)

    def log_noise_visualization(
        self, step: int, noisy: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, fps: float = 4.0
    ) -> None:
        """A grey video of the first sample's first channel, frame by frame: the noisy latent, the
        prediction, the target and the absolute error side by side (``Noisy_Predicted_Target_Error``).

        Latents are (B, C, F, H, W) for video or (B, C, H, W) for images (one frame).
        """
        if not self.should_log(step, Category.NOISE_VISUALIZATION):
            return
        values_of.same_shape(pred, target, "log_noise_visualization")
        panels = {"noisy": noisy, "predicted": pred, "target": target, "error": (pred - target).abs()}
        planes = {}
        for label, latents in panels.items():
            if latents.ndim not in (4, 5):
                raise TensorBoardError(
                    f"log_noise_visualization needs latents shaped (B, C, F, H, W) or (B, C, H, W); {label} is "
                    f"{tuple(latents.shape)}. Unpack packed transformer tokens to their grid first."
                )
            planes[label] = latents[0, 0] if latents.ndim == 5 else latents[0, 0].unsqueeze(0)
        video = values_of.side_by_side_video(planes)
        self.tensorboard.writer.add_video(f"{Category.NOISE_VISUALIZATION}/Noisy_Predicted_Target_Error", video, step, fps=fps)
        self.tensorboard.flush_if_due(step)

    # 14-15: the machine and the run's settings

    def log_system(self, step: int) -> None:
        """Machine-wide CPU and RAM, and this process's memory (``logger.log_memory``: RSS and, with
        CUDA, allocated, reserved and peak device memory, in MB)."""
        if self.should_log(step, Category.SYSTEM):
            self._scalars(Category.SYSTEM, step, machine_load())
            self.logger.log_memory(step)

    def log_configuration(self, config: Mapping[str, Any]) -> None:
        """The run's config as a YAML code block, a key/value table and HParams entries (flat scalars)."""
        if not self.should_log(0, Category.CONFIGURATION):
            return
        from torch.utils.tensorboard.summary import hparams

        writer, plain = self.tensorboard.writer, values_of.plain(config)
        writer.add_text(f"{Category.CONFIGURATION}/Config", f"```yaml\n{yaml.safe_dump(plain, sort_keys=False)}```", 0)
        flat = {key: values_of.hparam_value(value) for key, value in values_of.flatten(plain).items()}
        table = ["| key | value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in flat.items()]
        writer.add_text(f"{Category.CONFIGURATION}/Hparams", "\n".join(table), 0)
        for summary in hparams(flat, {}):
            writer.file_writer.add_summary(summary, 0)
        writer.flush()

    def _scalars(self, category: str, step: int, values: Mapping[str, Any]) -> None:
        """Into the logger's metrics stream, each under ``<category>/<name>``."""
        found = {f"{category}/{name}": values_of.scalar(name, value) for name, value in values.items() if value is not None}
        self.logger.log_metrics(found, step=step)
