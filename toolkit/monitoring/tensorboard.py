"""TensorBoard events in 15 fixed categories, from plain tensors and modules.

Every method takes what a trainer already has (losses, timesteps, predictions,
``named_parameters()``, decoded frames) and decides itself whether this step is
written: the cheap categories every ``log_every`` steps, the diagnostic ones
every ``diagnostic_every`` steps, a category whose flag is off never. So a
training loop calls each method on every step without an ``if``, and uses
``should_log(step, category)`` only to skip preparing an expensive input.
Nothing here knows the trainer or LTX-2.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from toolkit.monitoring.system_stats import system_load

NamedParameters = Iterable[tuple[str, torch.Tensor]]


class TensorBoardError(ValueError):
    """An input the monitor cannot turn into an event; the message says which and how to fix it."""


class Category:
    """Tag prefixes; TensorBoard sorts its sections by them."""

    TRAINING = "01_Training"
    LOSS_COMPONENTS = "02_Loss_Components"
    EPOCH_SUMMARY = "03_Epoch_Summary"
    LEARNING_RATE = "04_Learning_Rate"
    PERFORMANCE = "05_Performance"
    DIFFUSION = "06_Diffusion"
    NOISE_ANALYSIS = "07_Noise_Analysis"
    MODEL_ARCHITECTURE = "08_Model_Architecture"
    PARAMETER_STATS = "09_Parameter_Stats"
    HISTOGRAMS = "10_Histograms"
    GRADIENTS = "11_Gradients"
    SAMPLES = "12_Samples"
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


@dataclass
class TensorBoardFlags:
    """How often each category is written, and which expensive ones are on.

    Epoch summaries, samples, the architecture and the configuration are
    written whenever they are called: the caller already chose when.
    """

    log_every: int = 10
    diagnostic_every: int = 50
    flush_every: int = 100
    histograms: bool = True  # 10_Histograms
    parameter_tracking: bool = True  # 09_Parameter_Stats
    video_logging: bool = True  # 12_Samples
    noise_visualization: bool = True  # 13_Noise_Visualization
    profiling: bool = True  # 05_Performance and 14_System

    def __post_init__(self) -> None:
        for name in ("log_every", "diagnostic_every", "flush_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TensorBoardError(f"TensorBoardFlags.{name} is {value!r}; it must be an integer >= 1 (steps).")

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
    """A SummaryWriter that files events under the 15 categories.

    ``TensorBoardMonitor.disabled()`` writes nothing and creates no file: what
    non-main processes and runs without TensorBoard get, so callers never
    check.
    """

    def __init__(self, log_dir: str | Path, flags: TensorBoardFlags | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.flags = flags if flags is not None else TensorBoardFlags()
        self._last_flush_step = 0
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer: Any = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as error:
            raise TensorBoardError(
                f"Cannot write TensorBoard events to {self.log_dir}: {error.strerror or error}. "
                "Point the log folder somewhere writable or set logging.use_tensorboard: false."
            ) from error

    @classmethod
    def disabled(cls, flags: TensorBoardFlags | None = None) -> TensorBoardMonitor:
        monitor = cls.__new__(cls)
        monitor.log_dir = None
        monitor.flags = flags if flags is not None else TensorBoardFlags()
        monitor._last_flush_step = 0
        monitor._writer = None
        return monitor

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    @property
    def writer(self) -> Any:
        """The underlying SummaryWriter (None when disabled or closed), for events outside the categories."""
        return self._writer

    def should_log(self, step: int, category: str) -> bool:
        """Whether ``category`` is written at ``step`` (always False when off or disabled)."""
        if self._writer is None or not self.flags.category_on(category):
            return False
        every = self.flags.every(category)
        return every is None or step % every == 0

    # 01-05: scalars the loop already has

    def log_training(self, step: int, loss: Any, video_loss: Any = None, audio_loss: Any = None) -> None:
        if self.should_log(step, Category.TRAINING):
            self._scalars(Category.TRAINING, step, {"loss": loss, "video_loss": video_loss, "audio_loss": audio_loss})

    def log_loss_components(self, step: int, components: Mapping[str, Any]) -> None:
        if self.should_log(step, Category.LOSS_COMPONENTS):
            self._scalars(Category.LOSS_COMPONENTS, step, components)

    def log_epoch_summary(self, epoch: int, summary: Mapping[str, Any]) -> None:
        """Per-epoch averages, with the epoch number as the x axis."""
        if self.should_log(epoch, Category.EPOCH_SUMMARY):
            self._scalars(Category.EPOCH_SUMMARY, epoch, summary)

    def log_learning_rate(self, step: int, lr: float | Iterable[float], scheduler_state: dict | None = None) -> None:
        """``lr`` of each param group (``lr`` alone for one group) and the numeric scheduler state."""
        if not self.should_log(step, Category.LEARNING_RATE):
            return
        rates = [lr] if isinstance(lr, (int, float)) else list(lr)
        values = {"lr": rates[0]} if len(rates) == 1 else {f"lr/group_{i}": rate for i, rate in enumerate(rates)}
        for key, value in _flatten(scheduler_state or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"scheduler/{key}"] = value
        self._scalars(Category.LEARNING_RATE, step, values)

    def log_performance(
        self, step: int, step_time_s: float, samples_per_sec: float, data_time_s: float | None = None
    ) -> None:
        if not self.should_log(step, Category.PERFORMANCE):
            return
        values = {
            "step_time_s": step_time_s,
            "steps_per_sec": 1.0 / max(step_time_s, 1e-9),
            "samples_per_sec": samples_per_sec,
        }
        if data_time_s is not None:
            values["data_time_s"] = data_time_s
            values["data_time_share"] = data_time_s / max(step_time_s, 1e-9)
        self._scalars(Category.PERFORMANCE, step, values)

    # 06-07: how well the model predicts its target

    def log_diffusion(
        self, step: int, timesteps: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, buckets: int = 4
    ) -> None:
        """Prediction MSE and prediction SNR (dB, target power over error power) per timestep bucket.

        ``timesteps`` are per-sample sigmas in [0, 1], shape (B,); buckets
        split [0, 1] evenly and a bucket without a sample this step gets no point.
        """
        if not self.should_log(step, Category.DIFFUSION):
            return
        _same_shape(pred, target, "log_diffusion")
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
        error_power = (pred.detach().float() - target.detach().float()).pow(2).flatten(1).mean(1).cpu()
        target_power = target.detach().float().pow(2).flatten(1).mean(1).cpu()
        values: dict[str, float] = {
            "noise_prediction_mse": error_power.mean().item(),
            "prediction_snr_db": _snr_db(target_power.mean().item(), error_power.mean().item()),
            "timestep_mean": sigmas.mean().item(),
        }
        bucket_of = (sigmas * buckets).long().clamp(max=buckets - 1)
        for bucket in range(buckets):
            members = bucket_of == bucket
            if members.any():
                span = f"t{bucket / buckets:.2f}-{(bucket + 1) / buckets:.2f}"
                values[f"mse/{span}"] = error_power[members].mean().item()
                values[f"prediction_snr_db/{span}"] = _snr_db(
                    target_power[members].mean().item(), error_power[members].mean().item()
                )
        self._scalars(Category.DIFFUSION, step, values)

    def log_noise_analysis(self, step: int, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Mean and std of prediction and target, and their Pearson correlation (NaN if one is constant)."""
        if not self.should_log(step, Category.NOISE_ANALYSIS):
            return
        _same_shape(pred, target, "log_noise_analysis")
        pred_values, target_values = pred.detach().float().flatten(), target.detach().float().flatten()
        pred_centered, target_centered = pred_values - pred_values.mean(), target_values - target_values.mean()
        covariance = (pred_centered * target_centered).sum()
        spread = (pred_centered.pow(2).sum() * target_centered.pow(2).sum()).sqrt()
        stats = torch.stack(
            [pred_values.mean(), pred_values.std(), target_values.mean(), target_values.std(), covariance, spread]
        ).tolist()
        values = dict(zip(("pred_mean", "pred_std", "target_mean", "target_std"), stats[:4]))
        covariance_sum, spread_sum = stats[4:]
        values["correlation"] = covariance_sum / spread_sum if spread_sum > 0 else math.nan
        values["std_ratio"] = values["pred_std"] / values["target_std"] if values["target_std"] > 0 else math.nan
        self._scalars(Category.NOISE_ANALYSIS, step, values)

    # 08-11: the model's parameters and gradients

    def log_model_architecture(self, step: int, components: Mapping[str, nn.Module]) -> None:
        """Parameter counts per component and the trainable share, plus a table as text.

        Totals count a parameter shared by two components once.
        """
        if not self.should_log(step, Category.MODEL_ARCHITECTURE):
            return
        values: dict[str, float] = {}
        rows = ["| component | class | parameters | trainable | trainable % |", "|---|---|---:|---:|---:|"]
        every_param: dict[int, torch.Tensor] = {}
        for name, module in components.items():
            params = list(module.parameters())
            count = sum(p.numel() for p in params)
            trainable = sum(p.numel() for p in params if p.requires_grad)
            every_param.update((id(p), p) for p in params)
            share = 100.0 * trainable / count if count else 0.0
            values.update({f"{name}/params": count, f"{name}/trainable_params": trainable})
            values[f"{name}/trainable_percent"] = share
            rows.append(f"| {name} | {type(module).__name__} | {count:,} | {trainable:,} | {share:.3f} |")
        total = sum(p.numel() for p in every_param.values())
        total_trainable = sum(p.numel() for p in every_param.values() if p.requires_grad)
        values.update({"total/params": total, "total/trainable_params": total_trainable})
        values["total/trainable_percent"] = 100.0 * total_trainable / total if total else 0.0
        self._scalars(Category.MODEL_ARCHITECTURE, step, values)
        self._writer.add_text(f"{Category.MODEL_ARCHITECTURE}/summary", "\n".join(rows), step)

    def log_parameter_stats(self, step: int, named_params: NamedParameters) -> None:
        """Norm of each trainable parameter (the LoRA weights), and their total, mean and max."""
        if not self.should_log(step, Category.PARAMETER_STATS):
            return
        names, tensors = _trainable(named_params)
        norms = _norms(tensors)
        values = {f"norm/{name}": norm for name, norm in zip(names, norms)}
        values["norm_total"] = math.sqrt(sum(norm * norm for norm in norms))
        values["norm_mean"] = sum(norms) / len(norms) if norms else 0.0
        values["norm_max"] = max(norms, default=0.0)
        self._scalars(Category.PARAMETER_STATS, step, values)

    def log_histograms(self, step: int, named_params: NamedParameters) -> None:
        """Weight and gradient histograms of the trainable parameters (frozen base weights are skipped)."""
        if not self.should_log(step, Category.HISTOGRAMS):
            return
        for name, param in zip(*_trainable(named_params)):
            self._writer.add_histogram(f"{Category.HISTOGRAMS}/weights/{name}", param.detach().float().cpu(), step)
            if param.grad is not None:
                self._writer.add_histogram(f"{Category.HISTOGRAMS}/grads/{name}", param.grad.detach().float().cpu(), step)
        self._flush_if_due(step)

    def log_gradients(
        self, step: int, named_params: NamedParameters, block_of: Callable[[str], str] | None = None
    ) -> None:
        """Global gradient norm, norm per block, and how many trainable parameters got no gradient.

        ``block_of`` maps a parameter name to its block; the default cuts the
        name after its first numeric index (``transformer_blocks.3``).
        """
        if not self.should_log(step, Category.GRADIENTS):
            return
        block_of = block_of or block_of_parameter
        names, params = _trainable(named_params)
        with_grad = [(name, param.grad) for name, param in zip(names, params) if param.grad is not None]
        norms = _norms([grad for _, grad in with_grad])
        block_squares: dict[str, float] = {}
        for (name, _), norm in zip(with_grad, norms):
            block = block_of(name)
            block_squares[block] = block_squares.get(block, 0.0) + norm * norm
        values = {f"block/{block}": math.sqrt(square) for block, square in block_squares.items()}
        values["global_norm"] = math.sqrt(sum(block_squares.values()))
        values["params_without_grad"] = len(names) - len(with_grad)
        self._scalars(Category.GRADIENTS, step, values)

    # 12-13: pictures and sound

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
        """A generated clip: uint8 frames (T, H, W, 3) as a video when moviepy can encode it,
        otherwise a strip of up to 8 frames; mono audio (samples,) in [-1, 1]; the prompt as text.
        """
        if not self.should_log(step, Category.SAMPLES):
            return
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise TensorBoardError(
                f"log_sample({name!r}) needs uint8 frames shaped (T, H, W, 3), got {frames.dtype} "
                f"{tuple(frames.shape)}; convert with (video.clamp(0, 1) * 255).to(torch.uint8) in THWC order."
            )
        tag = f"{Category.SAMPLES}/{name}"
        frames = frames.detach().cpu()
        if _video_encoder_available():
            self._writer.add_video(f"{tag}/video", frames.permute(0, 3, 1, 2).unsqueeze(0), step, fps=fps)
        else:
            picks = torch.linspace(0, frames.shape[0] - 1, min(8, frames.shape[0])).round().long()
            self._writer.add_image(f"{tag}/frames", torch.cat(list(frames[picks]), dim=1), step, dataformats="HWC")
        if audio is not None:
            if audio.ndim != 1 or sample_rate is None:
                raise TensorBoardError(
                    f"log_sample({name!r}) needs mono audio shaped (samples,) and its sample_rate, got "
                    f"{tuple(audio.shape)} at {sample_rate}; mix channels down with audio.mean(0)."
                )
            self._writer.add_audio(f"{tag}/audio", audio.detach().float().cpu().clamp(-1, 1), step, sample_rate)
        if prompt is not None:
            self._writer.add_text(f"{tag}/prompt", prompt, step)
        self._flush_if_due(step)

    def log_noise_visualization(
        self, step: int, noisy: torch.Tensor, pred: torch.Tensor, target: torch.Tensor
    ) -> None:
        """Grey images of the first channel of the first frame of the first sample: the noisy
        latent, the prediction, the target and the absolute error, each scaled to [0, 1].

        Latents are (B, C, F, H, W) for video or (B, C, H, W) for images.
        """
        if not self.should_log(step, Category.NOISE_VISUALIZATION):
            return
        _same_shape(pred, target, "log_noise_visualization")
        images = {"noisy": noisy, "predicted": pred, "target": target, "error": (pred - target).abs()}
        for label, latents in images.items():
            if latents.ndim not in (4, 5):
                raise TensorBoardError(
                    f"log_noise_visualization needs latents shaped (B, C, F, H, W) or (B, C, H, W); {label} is "
                    f"{tuple(latents.shape)}. Unpack packed transformer tokens to their grid first."
                )
            plane = latents[0, 0, 0] if latents.ndim == 5 else latents[0, 0]
            self._writer.add_image(f"{Category.NOISE_VISUALIZATION}/{label}", _grey_image(plane), step, dataformats="HW")
        self._flush_if_due(step)

    # 14-15: the machine and the run's settings

    def log_system(self, step: int) -> None:
        """CPU load, RAM, this process's memory and, with CUDA, device memory."""
        if self.should_log(step, Category.SYSTEM):
            self._scalars(Category.SYSTEM, step, system_load())

    def log_configuration(self, config: Mapping[str, Any]) -> None:
        """The run's config as a YAML code block, a key/value table and HParams entries (flat scalars)."""
        if not self.should_log(0, Category.CONFIGURATION):
            return
        from torch.utils.tensorboard.summary import hparams

        plain = _plain(config)
        text = yaml.safe_dump(plain, sort_keys=False)
        self._writer.add_text(f"{Category.CONFIGURATION}/config", f"```yaml\n{text}```", 0)
        flat = {key: _hparam_value(value) for key, value in _flatten(plain).items()}
        table = ["| key | value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in flat.items()]
        self._writer.add_text(f"{Category.CONFIGURATION}/hparams", "\n".join(table), 0)
        for summary in hparams(flat, {}):
            self._writer.file_writer.add_summary(summary, 0)
        self._writer.flush()

    # metrics of the unified logger (toolkit.logging's TensorBoardSink)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Logger metrics under a category by prefix: ``throughput/*`` in 05_Performance,
        ``memory/*`` in 14_System, the rest in 01_Training, written at the steps
        those categories are (every ``log_every``); metrics.jsonl keeps every step."""
        written = False
        for name, value in metrics.items():
            category = _METRIC_CATEGORIES.get(name.split("/", 1)[0], Category.TRAINING)
            if self.should_log(step, category):
                self._writer.add_scalar(f"{category}/{name}", value, step)
                written = True
        if written:
            self._flush_if_due(step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; later calls write nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _scalars(self, category: str, step: int, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if value is not None:
                self._writer.add_scalar(f"{category}/{name}", _scalar(name, value), step)
        self._flush_if_due(step)

    def _flush_if_due(self, step: int) -> None:
        if step >= self._last_flush_step + self.flags.flush_every:
            self._writer.flush()
            self._last_flush_step = step


_METRIC_CATEGORIES = {"throughput": Category.PERFORMANCE, "memory": Category.SYSTEM}
_BLOCK_NAME = re.compile(r"^(.*?\.\d+)(?:\.|$)")


def block_of_parameter(name: str) -> str:
    """``transformer_blocks.3.attn1.to_q.lora_A.weight`` -> ``transformer_blocks.3``;
    a name without a numeric index -> its first part."""
    match = _BLOCK_NAME.match(name)
    return match.group(1) if match else name.split(".", 1)[0]


def _trainable(named_params: NamedParameters) -> tuple[list[str], list[torch.Tensor]]:
    pairs = [(name, param) for name, param in named_params if param.requires_grad]
    return [name for name, _ in pairs], [param for _, param in pairs]


def _norms(tensors: list[torch.Tensor]) -> list[float]:
    """L2 norms, read back with one device sync per device rather than one per tensor."""
    norms = [0.0] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_device.setdefault(tensor.device, []).append(index)
    for indices in by_device.values():
        stacked = torch.stack([torch.linalg.vector_norm(tensors[i].detach(), dtype=torch.float32) for i in indices])
        for index, norm in zip(indices, stacked.tolist()):
            norms[index] = norm
    return norms


def _snr_db(signal_power: float, error_power: float) -> float:
    if error_power <= 0:
        return math.inf
    if signal_power <= 0:
        return -math.inf
    return 10.0 * math.log10(signal_power / error_power)


def _grey_image(plane: torch.Tensor, min_side: int = 64) -> torch.Tensor:
    """A 2-D tensor scaled to [0, 1] (a constant plane is all zeros), enlarged to ``min_side`` pixels."""
    plane = plane.detach().float().cpu()
    low, high = plane.min(), plane.max()
    scaled = (plane - low) / (high - low) if high > low else torch.zeros_like(plane)
    factor = max(1, math.ceil(min_side / max(1, min(plane.shape))))
    return scaled.repeat_interleave(factor, 0).repeat_interleave(factor, 1)


def _same_shape(pred: torch.Tensor, target: torch.Tensor, method: str) -> None:
    if pred.shape != target.shape:
        raise TensorBoardError(
            f"{method} needs pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def _scalar(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TensorBoardError(f"{name} is a tensor of shape {tuple(value.shape)}; log one value (e.g. .mean()).")
        return float(value.detach().item())
    return float(value)


def _video_encoder_available() -> bool:
    """torch's add_video encodes through moviepy.editor (moviepy < 2)."""
    return importlib.util.find_spec("moviepy") is not None and importlib.util.find_spec("moviepy.editor") is not None


def _plain(value: Any) -> Any:
    """Mappings, lists and scalars as YAML-safe builtins; anything else (paths, enums) as its str."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{path}."))
        elif isinstance(item, (list, tuple)) and all(isinstance(entry, Mapping) for entry in item) and item:
            for index, entry in enumerate(item):
                flat.update(_flatten(entry, f"{path}.{index}."))
        else:
            flat[path] = item
    return flat


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
