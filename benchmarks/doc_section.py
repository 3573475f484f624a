"""Each benchmark's own section of docs/benchmarks.md, written by the script that measured it (`--write-doc`).

A section sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; a script replaces only its
own section and leaves every other line of the file as it was, so several benchmarks (and people)
can share the file. A section not there yet is appended at the end; a missing file is created.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "benchmarks.md"
TITLE = (
    "# Benchmarks\n\n"
    "Each section is written by the script it names (`python benchmarks/<script>.py --write-doc`), never by hand;\n"
    "ratios are against a bare baseline measured in the same run.\n"
)


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the section `name` holding `body` (added at the end when it has none)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r}: use letters, digits, '_', '-' and '.' only")
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text, count=1)
    return f"{text.rstrip()}\n\n{section}\n"


def write_section(name: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or add) the section `name` of `doc` with `body`, atomically; returns the file written."""
    sys.path.insert(0, str(REPO_ROOT))
    from toolkit.atomic_write import atomic_write

    text = doc.read_text(encoding="utf-8") if doc.exists() else TITLE
    doc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(doc, durable=False) as temporary:
        temporary.write_text(replace_section(text, name, body), encoding="utf-8")
    return doc


def load_average() -> float:
    """The machine's 1-minute load average: how busy it was with other work while a benchmark ran."""
    return os.getloadavg()[0]


def machine(load_before: float) -> str:
    """The machine a benchmark ran on, and how busy it was before and after (numbers from a busy machine
    carry as ratios only)."""
    return (
        f"{platform.machine()} with {os.cpu_count()} CPUs, load average {load_before:.1f} before and "
        f"{load_average():.1f} after"
    )
