"""The verbose trace (trace.jsonl) as the run page shows it: lanes of spans, phase totals, plan against measured.

Each start of a run (a `trace_start` record; a resume appends another) is one timeline. A span is
its `span_begin` and `span_end` records (matched by pid and span id); a span that never ended (the
run was killed) lasts to the last record of its start. Memory per span is what the tracer recorded
at its begin and end (process RSS; CUDA allocated and peak when there). The memory plan the run
traced (`memory_plan` span: total bytes per phase and memory) is set against the largest memory
measured in the spans of that phase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TRACE_FILE = "trace.jsonl"
MB = 1024**2
MAX_SPANS_PER_LANE = 1000  # a long run's hot-loop lane is thinned evenly beyond this
# Which spans each phase of the memory plan covers (toolkit/memory_management/plan_phases.py names the phases).
PHASE_SPANS = {
    "loading": ("load_model",),
    "caching prompts": ("encode_dataset", "get_prompt_embeds"),
    "training": ("hook_train_loop",),
    "sampling": ("sample", "generate_single_image"),
}


@dataclass
class Span:
    name: str
    depth: int
    begin: float
    end: float
    ended: bool
    memory_begin: dict
    memory_end: dict
    error: str | None

    @property
    def seconds(self) -> float:
        return self.end - self.begin

    def peak(self, key: str) -> float | None:
        values = [memory[key] for memory in (self.memory_begin, self.memory_end) if memory.get(key) is not None]
        return max(values) if values else None

    def describe(self) -> str:
        """The tooltip: name, duration and memory at begin -> end."""
        parts = [f"{self.name}: {self.seconds:.3f} s" + ("" if self.ended else " (never ended)")]
        for key, label in (("rss_mb", "RSS"), ("cuda_allocated_mb", "CUDA allocated"), ("cuda_peak_mb", "CUDA peak")):
            before, after = self.memory_begin.get(key), self.memory_end.get(key)
            if before is not None or after is not None:
                parts.append(f"{label} {_mb(before)} -> {_mb(after)}")
        if self.error:
            parts.append(f"error: {self.error}")
        return "; ".join(parts)


@dataclass
class Lane:
    name: str
    spans: list[Span]
    total: int  # spans of this name before thinning


@dataclass
class PhaseRow:
    """One phase of the plan in one memory: planned bytes, the budget, and the largest measured (MB)."""

    label: str
    memory: str  # host or device
    planned_mb: float
    budget_mb: float | None
    measured_mb: float | None
    measured_what: str

    @property
    def over_budget(self) -> bool:
        return self.budget_mb is not None and self.planned_mb > self.budget_mb


@dataclass
class Timeline:
    """One start of the run."""

    started: float
    ended: float
    resume_from_step: int
    lanes: list[Lane]
    phase_totals: list[dict]
    plan: list[PhaseRow] = field(default_factory=list)
    plan_fits: bool | None = None
    latent_reports: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-6)


def read_trace(run_folder: Path) -> list[Timeline]:
    """The timelines of trace.jsonl (empty when the run was not verbose); re-read only when the file changed."""
    path = Path(run_folder) / TRACE_FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    return _parse(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _parse(path: str, size: int, mtime_ns: int) -> list[Timeline]:
    sessions: list[list[dict]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written, or a torn one after a crash
            if record.get("name") == "trace_start" or not sessions:
                sessions.append([])
            sessions[-1].append(record)
    return [_timeline(records) for records in sessions if records]


def _timeline(records: list[dict]) -> Timeline:
    started, ended = records[0]["ts"], records[-1]["ts"]
    open_spans: dict[tuple, dict] = {}
    spans: list[Span] = []
    plan_record = None
    latent_reports = []
    for record in records:
        kind, key = record.get("type"), (record.get("pid"), record.get("span_id"))
        if kind == "span_begin":
            open_spans[key] = record
        elif kind == "span_end" and key in open_spans:
            begin = open_spans.pop(key)
            spans.append(_span(begin, record["ts"], True, record))
            if record["name"] == "memory_plan":
                plan_record = record
        elif kind == "event" and record.get("name") in ("latent_encode", "latent_caching_report"):
            summary = (record.get("fields") or {}).get("summary")
            if summary:
                latent_reports.append(summary)
    spans += [_span(begin, ended, False, None) for begin in open_spans.values()]
    spans.sort(key=lambda span: span.begin)
    timeline = Timeline(
        started=started,
        ended=ended,
        resume_from_step=int((records[0].get("fields") or {}).get("resume_from_step") or 0),
        lanes=_lanes(spans),
        phase_totals=_phase_totals(spans),
        latent_reports=latent_reports,
    )
    if plan_record is not None:
        timeline.plan, timeline.plan_fits = _plan_rows(plan_record.get("fields") or {}, spans)
    return timeline


def _span(begin: dict, end_ts: float, ended: bool, end: dict | None) -> Span:
    return Span(
        name=begin["name"],
        depth=int(begin.get("depth") or 0),
        begin=begin["ts"],
        end=end_ts,
        ended=ended,
        memory_begin=begin.get("memory") or {},
        memory_end=(end or {}).get("memory") or {},
        error=(end or {}).get("error"),
    )


def _lanes(spans: list[Span]) -> list[Lane]:
    by_name: dict[str, list[Span]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    lanes = []
    for name, members in by_name.items():
        shown = members
        if len(members) > MAX_SPANS_PER_LANE:
            stride = len(members) / MAX_SPANS_PER_LANE
            shown = [members[int(i * stride)] for i in range(MAX_SPANS_PER_LANE)]
        lanes.append(Lane(name, shown, len(members)))
    return lanes


def _phase_totals(spans: list[Span]) -> list[dict]:
    """Per span name: count, total and longest seconds, largest RSS and CUDA peak (MB)."""
    rows: dict[str, dict] = {}
    for span in spans:
        row = rows.setdefault(span.name, {"name": span.name, "count": 0, "seconds": 0.0, "longest": 0.0, "rss_mb": None, "cuda_peak_mb": None})
        row["count"] += 1
        row["seconds"] += span.seconds
        row["longest"] = max(row["longest"], span.seconds)
        for key in ("rss_mb", "cuda_peak_mb"):
            peak = span.peak(key)
            if peak is not None:
                row[key] = peak if row[key] is None else max(row[key], peak)
    return list(rows.values())


def _plan_rows(fields: dict, spans: list[Span]) -> tuple[list[PhaseRow], bool | None]:
    """The plan's totals ("device training": bytes, "host loading (peak at vae)": bytes) against measured peaks."""
    budgets = {"device": fields.get("device_budget"), "host": fields.get("host_budget")}
    rows = []
    for label, planned in (fields.get("totals") or {}).items():
        memory, _, phase_label = label.partition(" ")
        phase = phase_label.split(" (", 1)[0]
        members = [span for span in spans if span.name in PHASE_SPANS.get(phase, ())]
        key, what = ("rss_mb", "process RSS") if memory == "host" else ("cuda_peak_mb", "CUDA peak")
        peaks = [peak for span in members if (peak := span.peak(key)) is not None]
        if memory == "device" and not peaks:
            what = "no CUDA: the device is the host (see host RSS)"
        budget = budgets.get(memory)
        rows.append(
            PhaseRow(
                label=phase_label,
                memory=memory,
                planned_mb=planned / MB,
                budget_mb=budget / MB if budget else None,
                measured_mb=max(peaks) if peaks else None,
                measured_what=what,
            )
        )
    return rows, fields.get("fits")


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f} MB"
