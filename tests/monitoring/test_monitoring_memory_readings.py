"""The one memory reader: real host readings, torch's CUDA counters (faked here: no GPU in the tests), no thread."""

from __future__ import annotations

import threading

import pytest
import torch

from toolkit import memory_readings
from toolkit.monitoring.latents import MemoryReading, encode_peaks, encode_with_fallback
from toolkit.trace import memory_snapshot

MB = 1024 * 1024


def test_host_readings_are_consistent():
    reading = memory_readings.read_memory()
    # The kernel's high-water mark is kept in batched counters: it may trail the RSS by a few pages.
    assert reading.rss > 0 and reading.rss_peak >= 0.95 * reading.rss
    assert reading.ram_used + reading.ram_available == reading.ram_total
    if not torch.cuda.is_available():
        assert reading.cuda_allocated is None and reading.cuda_peak is None


class FakeCuda:
    """torch.cuda's counters for one device, with a settable allocation and a resettable peak."""

    def __init__(self):
        self.allocated = 100 * MB
        self.peak = 900 * MB
        self.resets = 0

    def install(self, monkeypatch):
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(cuda, "current_device", lambda: 0)
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: 2 * self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: 2 * self.peak)
        monkeypatch.setattr(cuda, "get_device_properties", lambda device: type("Props", (), {"total_memory": 8000 * MB}))
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", self.reset)

    def reset(self, device=None):
        self.resets += 1
        self.peak = self.allocated

    def allocate(self, size: int):
        self.allocated += size
        self.peak = max(self.peak, self.allocated)


def test_trace_and_latent_monitor_read_the_same_cuda_counters(monkeypatch):
    fake = FakeCuda()
    fake.install(monkeypatch)
    assert memory_snapshot()["cuda_allocated_mb"] == 100.0 and memory_snapshot()["cuda_peak_mb"] == 900.0
    assert memory_snapshot()["cuda_reserved_mb"] == 200.0
    reading = MemoryReading.read(0.0)
    assert (reading.cuda_allocated_mb, reading.cuda_total_mb, reading.cuda_peak_allocated_mb) == (100.0, 8000.0, 900.0)


def test_an_encode_reports_the_allocator_peak_of_that_encode_without_a_thread(monkeypatch):
    fake = FakeCuda()  # an earlier 900 MB peak that the encode must not report
    fake.install(monkeypatch)
    threads = set(threading.enumerate())

    def encode(pixels):
        assert set(threading.enumerate()) == threads  # nothing polls while the VAE runs
        fake.allocate(300 * MB)
        fake.allocated -= 300 * MB  # freed again before the encode returns
        return pixels[:, :, ::8, ::8]

    _, report = encode_with_fallback("clip.mp4", torch.zeros(1, 3, 16, 16), [("direct", encode)])
    assert fake.resets == 1
    assert report.peaks["cuda_allocated_mb"] == (400.0, None)
    assert report.peaks["cuda_reserved_mb"] == (800.0, None)
    assert report.memory_before.cuda_allocated_mb == report.memory_after.cuda_allocated_mb == 100.0


def _reading(at_s, rss, ram_used, rss_peak):
    return MemoryReading(at_s=at_s, rss_mb=rss, ram_used_mb=ram_used, ram_available_mb=1.0, ram_total_mb=9.0, rss_peak_mb=rss_peak)


def test_host_peaks_come_from_the_readings_or_the_kernels_peak_rss():
    readings = [_reading(0.0, 100, 5000, 700), _reading(0.5, 300, 5200, 700), _reading(0.9, 200, 5100, 700)]
    assert encode_peaks(readings) == {"rss_mb": (300, 0.5), "ram_used_mb": (5200, 0.5)}
    # The kernel's high-water mark rose during the encode: that is the peak, at an unknown moment.
    readings[-1] = _reading(0.9, 200, 5100, 800)
    assert encode_peaks(readings)["rss_mb"] == (800, None)
