"""Latent-encoding monitor: every VAE encode goes through a chain of strategies and is measured.

    latents, report = encode_with_fallback(clip, pixels, vae_strategies(vae, device))  # see vae_strategies.py

The chain is direct on the device, then tiled (spatial and temporal tiles), then on the
CPU; each next strategy runs only when the one before ran out of memory (on any device, CPU
included: `toolkit.out_of_memory.is_out_of_memory`). Any other error
propagates as it is, and when every strategy runs out of memory the run stops with a
`LatentEncodingError` naming the clip, its size and what each strategy raised: there are
no made-up latents to fall back on, they would silently train the LoRA on noise.

Each encode yields an `EncodeReport` (strategy and failures, shapes, compression ratios,
dtype and device, size, memory before/after/peak with timestamps, speed, efficiency; peaks
from the allocator's and the kernel's own counters, no polling thread: `encode_peaks`),
written to the trace and, with `model.verbose`, printed once per clip (by the trace's console, or
by the logger when the trace goes to files only: `toolkit.logging.events`). A
`CachingReport` (`collect_encode_reports`) sums up a whole caching pass.

This module knows nothing of LTX-2: a strategy is a name and a callable from pixels to
latents. `simulate_out_of_memory` injects failures into named strategies (tests, drills).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import torch

from toolkit import memory_readings
from toolkit.errors import DataError
from toolkit.logging import get_logger
from toolkit.logging.events import publish_event
from toolkit.monitoring.caching_report import CachingReport
from toolkit.out_of_memory import is_out_of_memory
from toolkit.trace import get_tracer

MB = 1024 * 1024
EncodeStrategy = tuple[str, Callable[[torch.Tensor], torch.Tensor]]

_logger = get_logger("toolkit.monitoring.latents")
_simulated_out_of_memory: set[str] = set()
_collectors: list[CachingReport] = []


class LatentEncodingError(DataError):
    """Every encoding strategy ran out of memory for a clip."""

    def __init__(self, clip: str, input_shape: tuple[int, ...], input_mb: float, failures: list[tuple[str, str]]):
        self.clip = clip
        self.input_shape = input_shape
        self.input_mb = input_mb
        self.failures = list(failures)
        tried = "; ".join(f"{name}: {message}" for name, message in failures)
        super().__init__(
            f"could not encode {clip} to latents: its frames {input_shape} ({input_mb:.1f} MB) ran out of memory "
            f"in every strategy ({tried}). Lower the dataset's resolution or num_frames, set model.low_vram: true, "
            "or free the memory other processes hold."
        )


@contextlib.contextmanager
def simulate_out_of_memory(*strategies: str) -> Iterator[None]:
    """Fault injection: inside the block, the named strategies raise torch.OutOfMemoryError instead of running."""
    added = set(strategies) - _simulated_out_of_memory
    _simulated_out_of_memory.update(added)
    try:
        yield
    finally:
        _simulated_out_of_memory.difference_update(added)


@contextlib.contextmanager
def collect_encode_reports() -> Iterator[CachingReport]:
    """Every encode inside the block adds its report to the yielded CachingReport."""
    report = CachingReport()
    _collectors.append(report)
    try:
        yield report
    finally:
        _collectors.remove(report)


# -- memory readings -----------------------------------------------------------


@dataclass(frozen=True)
class MemoryReading:
    """Host and device memory at one moment, `at_s` seconds after the encode began, in MB.

    Read by `toolkit.memory_readings` (the project's one memory reader). `rss_peak_mb` is the
    process's highest RSS so far; `cuda_peak_*_mb` the allocator's peaks since the encode began.
    """

    at_s: float
    rss_mb: float
    ram_used_mb: float
    ram_available_mb: float
    ram_total_mb: float
    rss_peak_mb: float | None = None
    cuda_allocated_mb: float | None = None
    cuda_reserved_mb: float | None = None
    cuda_total_mb: float | None = None
    cuda_peak_allocated_mb: float | None = None
    cuda_peak_reserved_mb: float | None = None

    @classmethod
    def read(cls, origin: float) -> "MemoryReading":
        reading = memory_readings.read_memory()
        return cls(
            at_s=time.perf_counter() - origin,
            rss_mb=reading.rss / MB,
            ram_used_mb=reading.ram_used / MB,
            ram_available_mb=reading.ram_available / MB,
            ram_total_mb=reading.ram_total / MB,
            rss_peak_mb=_mb(reading.rss_peak),
            cuda_allocated_mb=_mb(reading.cuda_allocated),
            cuda_reserved_mb=_mb(reading.cuda_reserved),
            cuda_total_mb=_mb(reading.cuda_total),
            cuda_peak_allocated_mb=_mb(reading.cuda_peak),
            cuda_peak_reserved_mb=_mb(reading.cuda_peak_reserved),
        )

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.__dict__)


def _mb(value: int | None) -> float | None:
    return None if value is None else value / MB


def encode_peaks(readings: list[MemoryReading]) -> dict[str, tuple[float, float | None]]:
    """Each figure's peak over an encode: figure -> (MB, seconds after the start, None when not known).

    Host figures: the highest of the readings taken at each attempt's start and end, or the
    kernel's peak RSS when the encode raised it (between two readings, so with no time).
    CUDA: the allocator's own peaks since the encode began (torch.cuda.max_memory_allocated /
    max_memory_reserved after reset_peak_memory_stats), exact and without polling.
    """
    peaks: dict[str, tuple[float, float | None]] = {}
    for figure in ("rss_mb", "ram_used_mb"):
        value, at_s = max((getattr(r, figure), r.at_s) for r in readings)
        peaks[figure] = (value, at_s)
    first, last = readings[0], readings[-1]
    if last.rss_peak_mb is not None and first.rss_peak_mb is not None and last.rss_peak_mb > first.rss_peak_mb:
        peaks["rss_mb"] = max(peaks["rss_mb"], (last.rss_peak_mb, None), key=lambda peak: peak[0])
    for figure, allocator_peak in (("cuda_allocated_mb", "cuda_peak_allocated_mb"), ("cuda_reserved_mb", "cuda_peak_reserved_mb")):
        if getattr(last, allocator_peak) is not None:
            peaks[figure] = (getattr(last, allocator_peak), None)
    return peaks


# -- the report of one encode ----------------------------------------------------


@dataclass
class EncodeReport:
    """The ten measurements of one encode (see the module docstring)."""

    clip: str
    strategy: str
    failures: list[tuple[str, str]]  # (strategy, what it raised), in the order tried
    input_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]
    input_dtype: str
    latent_dtype: str
    latent_device: str
    input_mb: float
    latent_mb: float
    latent_elements: int
    frames: int  # frames encoded, over the whole batch
    spatial_compression: float  # input height / latent height
    temporal_compression: float
    seconds: float  # the strategy that succeeded
    total_seconds: float  # failed attempts included
    started_at: str
    memory_before: MemoryReading
    memory_after: MemoryReading
    peaks: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # see encode_peaks

    @property
    def clips(self) -> int:
        """The clips encoded together: the batch size."""
        return self.input_shape[0]

    @property
    def spatial_area_compression(self) -> float:
        """Pixels per latent position: (H x W) / (h x w)."""
        return self.spatial_compression * (self.input_shape[-1] / self.latent_shape[-1])

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.input_mb / self.seconds

    @property
    def memory_change(self) -> dict[str, float]:
        """After minus before, in MB, for each figure both readings have."""
        before, after = self.memory_before.as_dict(), self.memory_after.as_dict()
        return {
            key: after[key] - before[key]
            for key in ("rss_mb", "ram_used_mb", "ram_available_mb", "cuda_allocated_mb", "cuda_reserved_mb")
            if before[key] is not None and after[key] is not None
        }

    @property
    def memory_change_percent(self) -> dict[str, float]:
        before = self.memory_before.as_dict()
        return {key: 100.0 * change / before[key] for key, change in self.memory_change.items() if before[key]}

    @property
    def efficiency(self) -> dict[str, float]:
        """How well memory is used: latent/input size, RAM in use, CUDA allocated/reserved before and after."""
        ratios = {
            "latent_to_input_size": self.latent_mb / self.input_mb if self.input_mb else 0.0,
            "ram_used_percent_after": 100.0 * self.memory_after.ram_used_mb / self.memory_after.ram_total_mb,
        }
        for name, reading in (("before", self.memory_before), ("after", self.memory_after)):
            if reading.cuda_reserved_mb:
                ratios[f"cuda_allocated_to_reserved_{name}"] = reading.cuda_allocated_mb / reading.cuda_reserved_mb
        return ratios

    def fields(self) -> dict:
        """Everything, as plain values, for the trace."""
        return {
            "clip": self.clip,
            "strategy": self.strategy,
            "failed": [{"strategy": name, "error": message} for name, message in self.failures],
            "input_shape": list(self.input_shape),
            "latent_shape": list(self.latent_shape),
            "spatial_compression": self.spatial_compression,
            "spatial_area_compression": self.spatial_area_compression,
            "temporal_compression": self.temporal_compression,
            "input_dtype": self.input_dtype,
            "latent_dtype": self.latent_dtype,
            "latent_device": self.latent_device,
            "input_mb": self.input_mb,
            "latent_mb": self.latent_mb,
            "latent_elements": self.latent_elements,
            "started_at": self.started_at,
            "memory_before": self.memory_before.as_dict(),
            "memory_after": self.memory_after.as_dict(),
            "memory_change_mb": self.memory_change,
            "memory_change_percent": self.memory_change_percent,
            "peak_mb": {figure: {"mb": mb, "at_s": at} for figure, (mb, at) in self.peaks.items()},
            "seconds": self.seconds,
            "total_seconds": self.total_seconds,
            "frames_per_second": self.frames_per_second,
            "mb_per_second": self.mb_per_second,
            "efficiency": self.efficiency,
        }

    def summary(self) -> str:
        """One line: what a user scanning the caching log wants to see per clip."""
        fallback = f" after {', '.join(name for name, _ in self.failures)} ran out of memory" if self.failures else ""
        peak_ram = self.peaks.get("rss_mb", (self.memory_after.rss_mb, 0.0))[0]
        text = (
            f"latents {self.clip}: {self.strategy}{fallback} | {tuple(self.input_shape)} -> {tuple(self.latent_shape)} "
            f"{self.latent_dtype} on {self.latent_device} | spatial {self.spatial_compression:g}x, "
            f"temporal {self.temporal_compression:g}x | {self.latent_mb:.3f} MB ({self.latent_elements:,} values) | "
            f"{self.seconds:.3f} s, {self.frames_per_second:.1f} frames/s, {self.mb_per_second:.1f} MB/s | "
            f"peak RSS {peak_ram:.0f} MB"
        )
        if "cuda_allocated_mb" in self.peaks:
            text += f", peak CUDA {self.peaks['cuda_allocated_mb'][0]:.0f} MB allocated"
        return text


# -- the chain -------------------------------------------------------------------


def encode_with_fallback(
    clip: str, pixels: torch.Tensor, strategies: list[EncodeStrategy], tracer=None
) -> tuple[torch.Tensor, EncodeReport]:
    """Encode `pixels` (B, C, T, H, W), or (B, C, H, W) for images, with the first strategy that does not
    run out of memory.

    Returns the latents and the encode's report. Raises LatentEncodingError when every
    strategy ran out of memory; any other error from a strategy propagates unchanged.
    """
    if not strategies:
        raise ValueError("encode_with_fallback needs at least one strategy")
    tracer = tracer if tracer is not None else get_tracer()
    origin = time.perf_counter()
    started_at = datetime.now().isoformat(timespec="milliseconds")
    input_mb = pixels.numel() * pixels.element_size() / MB
    failures: list[tuple[str, str]] = []
    memory_readings.reset_cuda_peak()
    readings = [MemoryReading.read(origin)]
    for name, encode in strategies:
        attempt_started = time.perf_counter()
        latents, failure = _attempt(name, encode, pixels)
        if failure is None:
            seconds = time.perf_counter() - attempt_started
            break
        failures.append((name, failure))
        tracer.event("latent_encode_fallback", clip=clip, strategy=name, error=failure)
        _release_memory()
        readings.append(MemoryReading.read(origin))
    else:
        raise LatentEncodingError(clip, tuple(pixels.shape), input_mb, failures)
    readings.append(MemoryReading.read(origin))
    before, after = readings[0], readings[-1]
    report = EncodeReport(
        clip=clip,
        strategy=name,
        failures=failures,
        input_shape=tuple(pixels.shape),
        latent_shape=tuple(latents.shape),
        input_dtype=str(pixels.dtype),
        latent_dtype=str(latents.dtype),
        latent_device=str(latents.device),
        input_mb=input_mb,
        latent_mb=latents.numel() * latents.element_size() / MB,
        latent_elements=latents.numel(),
        frames=pixels.shape[0] * (pixels.shape[2] if pixels.ndim == 5 else 1),
        spatial_compression=pixels.shape[-2] / latents.shape[-2],
        temporal_compression=_temporal_compression(pixels, latents),
        seconds=max(seconds, 1e-9),
        total_seconds=time.perf_counter() - origin,
        started_at=started_at,
        memory_before=before,
        memory_after=after,
        peaks=encode_peaks(readings),
    )
    _publish(report, tracer)
    return latents, report


def _attempt(name: str, encode, pixels: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """(latents, None), or (None, what was raised) when the strategy ran out of memory.

    Returning rather than handling the failure inside `except` lets the error and its traceback
    (which hold the failed attempt's tensors) go before the next strategy needs the memory.
    """
    try:
        if name in _simulated_out_of_memory:
            raise torch.OutOfMemoryError(f"out of memory (simulated for strategy {name!r})")
        return encode(pixels), None
    except Exception as error:  # only running out of memory moves on to the next strategy
        if not is_out_of_memory(error):
            raise
        return None, f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"


def _temporal_compression(pixels: torch.Tensor, latents: torch.Tensor) -> float:
    """Causal video VAEs map 1 + r*k frames to 1 + k latent frames, so the ratio is (T - 1) / (F - 1)."""
    if pixels.ndim != 5 or latents.ndim != 5:
        return 1.0
    frames, latent_frames = pixels.shape[2], latents.shape[2]
    if frames > 1 and latent_frames > 1:
        return (frames - 1) / (latent_frames - 1)
    return frames / latent_frames


def _release_memory() -> None:
    """What an out-of-memory attempt left behind, freed before the next strategy tries."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _publish(report: EncodeReport, tracer) -> None:
    publish_event(tracer, _logger, "latent_encode", report.summary, report.fields, log_when_untraced=False)
    for collector in _collectors:
        collector.add(report)
