"""docs/benchmarks.md holds a section of every benchmark, written by the commands benchmarks/refresh_docs.py runs,
and every link to it from docs/ and the README lands on a heading. Reads files only: no benchmark runs here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from benchmarks import refresh_docs
from benchmarks.doc_section import DOC, REPO_ROOT, anchor, section_names

BENCHMARKS = sorted([*(REPO_ROOT / "benchmarks").glob("bench_*.py"), REPO_ROOT / "benchmarks" / "gpu_check.py"])
LINK = re.compile(r"benchmarks\.md#([^)\s]+)\)")


def _sections(text: str) -> dict[str, str]:
    return dict(re.findall(r"<!-- bench:([\w.-]+) -->\n(.*?)\n<!-- /bench:\1 -->", text, re.DOTALL))


def _anchors(text: str) -> set[str]:
    return {anchor(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_every_benchmark_has_its_section_headed_and_named_by_its_command():
    text = DOC.read_text(encoding="utf-8")
    sections = _sections(text)
    assert list(sections) == section_names(text)  # every start marker has its end
    names = {name.split(".")[0] for name in sections}
    missing = [path.name for path in BENCHMARKS if path.stem.removeprefix("bench_") not in names]
    assert not missing, f"no section in {DOC.name} for {missing}: run them with --write-doc"
    for name, body in sections.items():
        script = f"benchmarks/{'gpu_check' if name.startswith('gpu_check') else 'bench_' + name.split('.')[0]}.py"
        assert re.match(rf"## .+\n\n`python {re.escape(script)}[ `]", body), f"section {name}: no heading, or not {script}'s command"


def test_refresh_runs_every_benchmark_and_the_doc_holds_what_those_commands_wrote():
    commands = refresh_docs.commands(cuda=False)
    scripts = {Path(command[1]).name for command in commands.values()}
    assert scripts >= {path.name for path in BENCHMARKS}
    text = DOC.read_text(encoding="utf-8")
    stale = [name for name, command in commands.items() if f"`python {shlex.join(command[1:])}`" not in text]
    assert not stale, f"sections not written by refresh_docs.py's command: {stale} (python benchmarks/refresh_docs.py --only ...)"


def test_every_link_to_a_benchmark_lands_on_a_heading():
    headings = _anchors(DOC.read_text(encoding="utf-8"))
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    links = [(page.name, target) for page in pages for target in LINK.findall(page.read_text(encoding="utf-8"))]
    links += [(DOC.name, target) for target in re.findall(r"\]\(#([^)\s]+)\)", DOC.read_text(encoding="utf-8"))]
    assert links, "no page links to docs/benchmarks.md"
    broken = [(page, target) for page, target in links if target not in headings]
    assert not broken, f"links to no heading of {DOC.name}: {broken}"


def test_anchor_is_the_one_github_gives():
    assert anchor("Load throughput") == "load-throughput"
    assert anchor("GPU check: NVIDIA H100 80GB HBM3") == "gpu-check-nvidia-h100-80gb-hbm3"
    assert anchor("Time to first step, cpu clock") == "time-to-first-step-cpu-clock"
    assert anchor("Trace point with `the` trace_off") == "trace-point-with-the-trace_off"
