"""Each benchmark's own section of docs/benchmarks.md, written by the script that measured it (`--write-doc`).

A section sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; a script replaces only its
own section and leaves every other line of the file as it was, so several benchmarks (and people)
can share the file. A section not there yet is appended at the end; a missing file is created. What
precedes the first section is `TITLE`, written again with every section (it is this module's, not a
person's). NAME is the script's name without `bench_` (`bench_eval.py`: `eval`), and a suffix after a
dot where one script writes several sections (`trainer_overhead.cpu`, `gpu_check.nvidia-h100-80gb-hbm3`).

`report` builds a section the same way for every script: a `##` heading (what other pages link to:
`benchmarks.md#<anchor(heading)>`), the command that produced it, what it measures and against which
baseline, the tables, and the machine it ran on with its load.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_START = re.compile(r"<!-- bench:([A-Za-z0-9_.-]+) -->")
TITLE = (
    "# Benchmarks\n\n"
    "Each section is written by the script it names (`python benchmarks/<script>.py ... --write-doc`), never by hand.\n"
    "Ratios are against a bare baseline measured in the same run (each section says which), so they carry from one\n"
    "machine to another where the seconds do not; each section ends with the machine and its load average while it\n"
    "ran (numbers from a loaded machine are noisy: read the ratios).\n\n"
    "To measure everything again, on an idle machine: `python benchmarks/refresh_docs.py` (it runs each section's\n"
    "command in turn; `--list` prints them, `--only NAME ...` runs some). Pages under `docs/` link here for every\n"
    "measured number instead of writing it down.\n"
)


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section `name` holding `body` (added at the end when it has none), under `TITLE`."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r}: use letters, digits, '_', '-' and '.' only")
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = f"{text.rstrip()}\n\n{section}\n"
    first = SECTION_START.search(text)
    return f"{TITLE}\n{text[first.start():]}"


def write_section(name: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or add) the section `name` of `doc` with `body`, atomically; returns the file written."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.atomic_write import atomic_write

    text = doc.read_text(encoding="utf-8") if doc.exists() else TITLE
    doc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(doc, durable=False) as temporary:
        temporary.write_text(replace_section(text, name, body), encoding="utf-8")
    return doc


def section_names(text: str) -> list[str]:
    """The names of the sections in `text`, in order."""
    return SECTION_START.findall(text)


def anchor(heading: str) -> str:
    """The link target GitHub (and most Markdown renderers) give a heading: lower case, punctuation dropped
    (`_` and `-` kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The command that ran `script` (its `__file__`) with `argv` (default: this process's arguments), as typed
    from the repository root: what a reader runs to measure the same thing again."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    path = Path(script).resolve().relative_to(REPO_ROOT)
    return " ".join(["python", path.as_posix(), *map(shlex.quote, arguments)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; every column but the first (the row's name) is right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table aligned in columns, for the console."""
    lines = [tuple(header), *(tuple(str(cell) for cell in row) for row in rows)]
    widths = [max(len(line[column]) for line in lines if column < len(line)) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def report(title: str, command: str, what: str, tables: Sequence[str], load_before: float) -> str:
    """A section's body: heading, command, what is measured against which baseline, the tables, the machine."""
    parts = [f"## {title}", f"`{command}`", what.strip(), *(table.strip() for table in tables), f"{machine(load_before)}."]
    return "\n\n".join(parts)


def load_average() -> float:
    """The machine's 1-minute load average: how busy it was with other work while a benchmark ran."""
    return os.getloadavg()[0]


def processor() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or the architecture where it is not known."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.MULTILINE)
        if found:
            return f"{platform.machine()} ({found[1].strip()})"
    return platform.processor() or platform.machine()


def machine(load_before: float) -> str:
    """The machine a benchmark ran on, when, and how busy it was before and after (numbers from a busy machine
    carry as ratios only)."""
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {processor()} with {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} before and {load_average():.1f} after"
    )
