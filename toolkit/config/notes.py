"""What loading a job changed or left aside: ai-toolkit spellings mapped, keys not used, values adjusted;
and what the check before loading found in the media (toolkit/preflight).

The loader fills one `ConfigNotes` per job file; `run.py` prints it once (dry run or not) and the
trainer records it in the verbose trace, so a user sees which of their keys were read how.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ConfigNotes:
    """Remarks on a job file, each naming the key path it concerns."""

    mapped: list[str] = field(default_factory=list)
    """ai-toolkit spellings read as ours: `config.process[0].train.gradient_accumulation_steps -> gradient_accumulation`."""
    not_used: list[str] = field(default_factory=list)
    """Keys accepted but not used by this trainer, with the reason: `config.process[0].sqlite_db_path (...)`."""
    adjusted: list[str] = field(default_factory=list)
    """Values changed to what the model takes: `config.process[0].sample.num_frames 40 -> 41 (...)`."""
    found: list[str] = field(default_factory=list)
    """What the check before loading found in the media and the run will do by rule (toolkit/preflight):
    `config.process[0].datasets[0].resolution: data/a.mp4: 64x64 is scaled up 64x ...`."""

    def __bool__(self) -> bool:
        return bool(self.mapped or self.not_used or self.adjusted or self.found)

    def lines(self) -> list[str]:
        """The notes as printable lines, one heading per kind that has any."""
        lines: list[str] = []
        for heading, items in (
            ("ai-toolkit keys read as this trainer's", self.mapped),
            ("not used by this trainer", self.not_used),
            ("adjusted to what the model takes", self.adjusted),
            ("found in the dataset folders (checked before loading)", self.found),
        ):
            if items:
                lines.append(f"{heading}:")
                lines.extend(f"  {item}" for item in items)
        return lines

    def trace_fields(self) -> dict[str, list[str]]:
        """The notes as plain fields of a trace event (the lists themselves: nothing is built for a null tracer)."""
        return {"mapped": self.mapped, "not_used": self.not_used, "adjusted": self.adjusted, "found": self.found}
