"""`logging:` section: the ordinary logger, metrics, TensorBoard and inspection (not the verbose trace)."""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

from pydantic import Field, model_validator

from toolkit.config.base import ConfigModel


class LoggingConfig(ConfigModel):
    """How a process reports progress; `model.verbose` (the trace) is separate."""

    verbose: bool = Field(default=False, description="Set the ordinary logger to DEBUG level.")
    log_every: int = Field(
        default=10, ge=1, description="Log loss, lr, step times, gradient norms and system load (01, 02, 04, 05, 11, 14) every N steps."
    )
    diagnostic_every: int = Field(
        default=50, ge=1, description="Write the diagnostic TensorBoard categories (06, 07, 09, 10, 13) every N steps."
    )
    flush_every: int = Field(default=100, ge=1, description="Flush TensorBoard's event files every N steps.")
    use_tensorboard: bool = Field(default=True, description="Write TensorBoard events under <run>/tensorboard.")
    histograms: bool = Field(default=True, description="TensorBoard 10_Parameter_Histograms: LoRA weights and gradients.")
    parameter_tracking: bool = Field(default=True, description="TensorBoard 09_Parameter_Stats: LoRA weight norms.")
    video_logging: bool = Field(default=True, description="TensorBoard 12_Generated_Samples: sample videos and audio.")
    noise_visualization: bool = Field(
        default=True, description="TensorBoard 13_Noise_Visualization: noisy, predicted and target latents and the error as a video."
    )
    profiling: bool = Field(
        default=True, description="14_System and 05_Performance's step times (samples/s from the progress bar stays)."
    )
    use_wandb: bool = Field(default=False, description="Also log metrics to Weights & Biases (offline without network).")
    wandb_project: str | None = Field(default=None, description="W&B project; defaults to the run name.")
    wandb_name: str | None = Field(default=None, description="W&B run name.")
    wandb_tags: list[str] = Field(default_factory=list, description="W&B tags.")
    log_file: str = Field(default="train.log", description="Log file name under <run>/logs.")
    progress_bar: bool = Field(default=True, description="Show a progress bar with loss and speed.")
    metrics_window: int = Field(
        default=100, ge=1, description="Steps averaged for the windowed metrics and 01_Training/Loss_Smoothed."
    )
    max_file_bytes: int = Field(default=10_485_760, ge=0, description="Rotate the log file at this size (0: never).")
    backup_count: int = Field(default=3, ge=0, description="Rotated log files kept.")
    inspect: bool = Field(
        default=False, description="Run the inspection callbacks (inputs, outputs, attention, conditioning)."
    )
    inspect_every: int = Field(default=100, ge=1, description="With `inspect`, inspect every N steps.")

    @model_validator(mode="after")
    def _rotation_keeps_a_backup(self) -> LoggingConfig:
        if self.max_file_bytes > 0 and self.backup_count < 1:
            raise ValueError("backup_count must be at least 1 when max_file_bytes rotates the log (or set max_file_bytes: 0)")
        return self

    @model_validator(mode="after")
    def _wandb_is_installed(self) -> LoggingConfig:
        if self.use_wandb and importlib.util.find_spec("wandb") is None:
            raise ValueError(
                "use_wandb is true but the wandb package is not installed; install it (pip install wandb) "
                "or set use_wandb: false (metrics still go to metrics.jsonl and TensorBoard)"
            )
        return self


class GenerateLoggingConfig(ConfigModel):
    """`logging:` of a generate process: the log file and its level (a generate logs no metrics or inspections)."""

    verbose: bool = Field(default=False, description="Set the ordinary logger to DEBUG level.")
    log_file: str = Field(default="generate.log", description="Log file name under <output_folder>/<name>/logs.")
    max_file_bytes: int = Field(default=10_485_760, ge=0, description="Rotate the log file at this size (0: never).")
    backup_count: int = Field(default=3, ge=1, description="Rotated log files kept.")

    # What the shared log set-up reads and a generate process never writes.
    use_tensorboard: ClassVar[bool] = False
    use_wandb: ClassVar[bool] = False
    progress_bar: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _reject_training_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        training_only = sorted(key for key in data if key in LoggingConfig.model_fields and key not in cls.model_fields)
        if training_only:
            raise ValueError(
                f"{', '.join(training_only)} only apply to training (sd_trainer): a generate process writes no "
                f"metrics, TensorBoard, W&B or inspections; remove them (allowed here: {', '.join(cls.model_fields)})"
            )
        return data
