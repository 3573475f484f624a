"""TraceConfig: the settings of the verbose layer, built once from the job config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.trace.errors import TraceConfigError


@dataclass(frozen=True)
class TraceConfig:
    """What the per-process tracer records and where.

    enabled: off by default; when off every trace call is a no-op.
    output_dir: folder for ``trace.jsonl`` and ``trace.json``; None traces to the console only.
    every_n_steps / first_steps: hot loops trace steps ``0..first_steps-1``, then every N-th step.
    heartbeat_s: a span open this long prints "still running" again every heartbeat_s; 0 disables it.
    console: print ``[VERBOSE]`` lines to stdout.
    resume_from_step: the step a resumed training starts at (0 for a fresh run), recorded in ``trace_start``
    so the records of each start can be told apart in a trace that spans several runs.
    """

    enabled: bool = False
    output_dir: Path | None = None
    every_n_steps: int = 10
    first_steps: int = 3
    heartbeat_s: float = 30.0
    console: bool = True
    resume_from_step: int = 0

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise TraceConfigError(
                f"TraceConfig.every_n_steps is {self.every_n_steps}; it must be 1 or more "
                "(1 traces every step, 10 every tenth step)."
            )
        if self.first_steps < 0:
            raise TraceConfigError(
                f"TraceConfig.first_steps is {self.first_steps}; it must be 0 or more "
                "(the number of initial steps that are always traced)."
            )
        if self.heartbeat_s < 0:
            raise TraceConfigError(
                f"TraceConfig.heartbeat_s is {self.heartbeat_s}; it must be 0 (no heartbeat) or a "
                "positive number of seconds."
            )
        if self.output_dir is not None and not isinstance(self.output_dir, Path):
            object.__setattr__(self, "output_dir", Path(self.output_dir))
