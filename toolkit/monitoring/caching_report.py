"""CachingReport: what a whole caching pass's encodes add up to (see `latents.collect_encode_reports`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.logging.events import publish_event

if TYPE_CHECKING:
    from toolkit.monitoring.latents import EncodeReport

LISTED_CLIPS = 3


@dataclass
class CachingReport:
    """The encodes of one caching pass: clips per strategy, the slowest and largest clips, peak memory."""

    reports: list[EncodeReport] = field(default_factory=list)

    def add(self, report: EncodeReport) -> None:
        self.reports.append(report)

    @property
    def clips(self) -> int:
        """Clips encoded: an encode of several small clips of one shape (one batch) counts each."""
        return sum(report.clips for report in self.reports)

    @property
    def clips_per_strategy(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for report in self.reports:
            counts[report.strategy] += report.clips
        return dict(counts)

    @property
    def fallbacks(self) -> list[EncodeReport]:
        """The encodes where at least one strategy ran out of memory."""
        return [report for report in self.reports if report.failures]

    def slowest(self, count: int = LISTED_CLIPS) -> list[EncodeReport]:
        return sorted(self.reports, key=lambda report: report.total_seconds, reverse=True)[:count]

    def largest(self, count: int = LISTED_CLIPS) -> list[EncodeReport]:
        return sorted(self.reports, key=lambda report: report.input_mb, reverse=True)[:count]

    def peak(self, figure: str) -> tuple[float, str] | None:
        """The highest `figure` (rss_mb, ram_used_mb, cuda_allocated_mb, cuda_reserved_mb) of the pass and its clip."""
        readings = [(report.peaks[figure][0], report.clip) for report in self.reports if figure in report.peaks]
        return max(readings) if readings else None

    @property
    def seconds(self) -> float:
        return sum(report.total_seconds for report in self.reports)

    def fields(self) -> dict:
        """The report as plain values, for the trace."""
        peaks = {}
        for figure in ("rss_mb", "ram_used_mb", "cuda_allocated_mb", "cuda_reserved_mb"):
            found = self.peak(figure)
            if found is not None:
                peaks[figure] = {"mb": found[0], "clip": found[1]}
        return {
            "clips": self.clips,
            "encodes": len(self.reports),
            "clips_per_strategy": self.clips_per_strategy,
            "fallbacks": [{"clip": r.clip, "failed": [name for name, _ in r.failures]} for r in self.fallbacks],
            "slowest": [{"clip": r.clip, "seconds": r.total_seconds} for r in self.slowest()],
            "largest": [{"clip": r.clip, "input_mb": r.input_mb, "shape": list(r.input_shape)} for r in self.largest()],
            "peak_mb": peaks,
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """A few lines for the end of caching."""
        if not self.reports:
            return "Latent encoding: no clip needed encoding (all latents came from the cache)"
        strategies = ", ".join(f"{name} {count}" for name, count in self.clips_per_strategy.items())
        calls = len(self.reports)
        batched = f", {calls} VAE call{'s' * (calls != 1)} (small clips of one shape batched)" if calls != self.clips else ""
        lines = [f"Latent encoding: {self.clips} clips in {self.seconds:.2f} s ({strategies}){batched}"]
        for report in self.fallbacks:
            failed = ", ".join(name for name, _ in report.failures)
            lines.append(f"  fell back: {report.clip}: {failed} ran out of memory, encoded {report.strategy}")
        lines.append("  slowest: " + ", ".join(f"{r.clip} {r.total_seconds:.3f} s" for r in self.slowest()))
        lines.append("  largest: " + ", ".join(f"{r.clip} {r.input_mb:.1f} MB" for r in self.largest()))
        peaks = []
        labels = {"rss_mb": "RSS", "cuda_allocated_mb": "CUDA allocated", "cuda_reserved_mb": "CUDA reserved"}
        for figure, label in labels.items():
            found = self.peak(figure)
            if found is not None:
                peaks.append(f"{label} {found[0]:.0f} MB ({found[1]})")
        lines.append("  peak memory: " + ", ".join(peaks))
        return "\n".join(lines)

    def publish(self, logger, tracer) -> None:
        """Write the report to the trace and print its summary once: by the trace's console when
        it prints, otherwise through `logger`."""
        publish_event(tracer, logger, "latent_caching_report", self.summary, self.fields)
