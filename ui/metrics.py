"""What the run page and the runs list read from metrics.jsonl: the chart series, speed and the last loss.

metrics.jsonl holds one line per logged group, `{"step": 3, "time": <unix s>, "metrics": {...}}`,
appended as the run goes (and across resumes, so a step logged before a stop can come again after
the resume; the later value wins). The page asks for the lines after a byte offset, so a live page
reads each line once however long the run is. Only whole lines are read: the writer may be midway
through the last one.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
# The chart's series: the metric names the trainer logs (toolkit/monitoring/tensorboard.py categories).
SERIES = {
    "loss": "01_Training/Loss",
    "video_loss": "02_Loss_Components/Video",
    "audio_loss": "02_Loss_Components/Audio",
    "lr": "04_Learning_Rate/Learning_Rate",
    "grad_norm": "11_Gradient_Stats/Total_Gradient_Norm",
    "eval_loss": "06_Diffusion/Eval_Loss",  # the held-out clips' loss, every train.eval_every steps (docs/evaluation.md)
    "eval_loss_ema": "06_Diffusion/Eval_Loss_EMA",
}
TAIL_BYTES = 64 * 1024  # enough lines of the newest steps for speed and the last loss
CACHED_FILES = 16
_CACHE: dict[str, tuple[int, "MetricLines"]] = {}  # path -> (inode, everything read so far), oldest first
_CACHE_LOCK = threading.Lock()


@dataclass
class MetricLines:
    """Series read from a byte range of metrics.jsonl: {series: {step: value}} and where reading stopped."""

    series: dict[str, dict[int, float | None]] = field(default_factory=lambda: {name: {} for name in SERIES})
    times: list[tuple[int, float]] = field(default_factory=list)  # (step, unix time) of each line
    offset: int = 0

    def copy(self) -> MetricLines:
        return MetricLines({name: dict(values) for name, values in self.series.items()}, list(self.times), self.offset)

    def as_json(self) -> dict:
        """{offset, steps: [...], <series>: [...]} aligned on the sorted steps (null where a series has no value)."""
        steps = sorted({step for values in self.series.values() for step in values})
        columns = {name: [values.get(step) for step in steps] for name, values in self.series.items()}
        return {"offset": self.offset, "steps": steps, **columns}


def read_metrics(run_folder: Path, offset: int = 0) -> MetricLines:
    """The whole lines of metrics.jsonl from byte `offset` on; from 0, the whole file, kept and extended.

    A page opening a long run asks for everything once; the parse is kept per file (and only the
    lines added since are read the next time), so opening it again, or from a second tab, is cheap.
    """
    path = Path(run_folder) / METRICS_FILE
    if offset:
        return _read_from(path, MetricLines(offset=offset))
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return MetricLines()
    with _CACHE_LOCK:
        kept = _CACHE.pop(str(path), None)
        lines = kept[1] if kept is not None and kept[0] == inode else MetricLines()
        lines = _read_from(path, lines)
        _CACHE[str(path)] = (inode, lines)
        while len(_CACHE) > CACHED_FILES:
            _CACHE.pop(next(iter(_CACHE)))
        return lines.copy()


def _read_from(path: Path, lines: MetricLines) -> MetricLines:
    """Add the whole lines after `lines.offset` to `lines` (a replaced, shorter file is read anew)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if lines.offset > size:
                lines = MetricLines()
            handle.seek(lines.offset)
            data = handle.read()
    except FileNotFoundError:
        return lines
    whole = data[: data.rfind(b"\n") + 1]
    lines.offset += len(whole)
    for raw in whole.decode("utf-8", errors="replace").splitlines():
        if any(metric in raw for metric in SERIES.values()):  # most lines are system and timing groups: not parsed
            _add_line(lines, raw)
    return lines


def read_recent_metrics(run_folder: Path) -> MetricLines:
    """The last TAIL_BYTES of metrics.jsonl (from the start of a line): for the runs list."""
    path = Path(run_folder) / METRICS_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return MetricLines()
    if size <= TAIL_BYTES:
        return _read_from(path, MetricLines())
    with path.open("rb") as handle:
        handle.seek(size - TAIL_BYTES)
        handle.readline()  # a partial first line
        start = handle.tell()
    return _read_from(path, MetricLines(offset=start))


def _add_line(lines: MetricLines, raw: str) -> None:
    try:
        record = json.loads(raw)
        step, values = int(record["step"]), record["metrics"]
    except (ValueError, KeyError, TypeError):
        return  # a line another writer broke: the chart skips it rather than losing the run page
    if "time" in record:
        lines.times.append((step, float(record["time"])))
    for name, metric in SERIES.items():
        if metric in values:
            value = values[metric]
            lines.series[name][step] = value if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class Progress:
    """The newest step logged, the last loss, and the speed of the current stretch of the run."""

    last_step: int | None
    last_loss: float | None
    steps_per_second: float | None


def progress(lines: MetricLines, window: int = 20) -> Progress:
    """Speed from the time between the newest `window` logged steps of the latest stretch (after any resume)."""
    if not lines.times:
        return Progress(None, None, None)
    stretch = [lines.times[-1]]
    for step, time in reversed(lines.times[:-1]):
        if step > stretch[-1][0]:  # an earlier step logged later: the run resumed here
            break
        if step < stretch[-1][0]:
            stretch.append((step, time))
        if len(stretch) > window:
            break
    (last_step, last_time), (first_step, first_time) = stretch[0], stretch[-1]
    speed = (last_step - first_step) / (last_time - first_time) if last_time > first_time else None
    losses = lines.series["loss"]
    last_loss = losses[max(losses)] if losses else None
    return Progress(last_step, last_loss, speed)
