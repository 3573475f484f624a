"""benchmarks/gpu_check.py on the CPU (--quick): every phase of the real paths runs and is reported against the plan."""

from __future__ import annotations

import math
import re

import pytest

from benchmarks import gpu_check

PHASES = ("loading", "training adamw8bit", "training adamw", "sampling")


@pytest.mark.slow
def test_quick_cpu_run_reports_every_phase_with_finite_ratios(tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    assert gpu_check.main(["--device", "cpu", "--quick", "--write-doc", str(doc)]) == 0
    output = capsys.readouterr().out
    rows = {}
    for line in output.splitlines():
        match = re.match(
            r"^(loading|training \w+|sampling)\s+(host|cuda)\s+([\d.]+) GiB\s+(-?[\d.]+) GiB\s+(\S+)\s+([\d.]+)\s+(-?[\d.]+) GiB$",
            line,
        )
        if match:
            rows[match[1], match[2]] = (float(match[3]), float(match[5]))
    skipped = re.findall(r"^skipped (training \w+): (.+)$", output, re.MULTILINE)
    for phase in PHASES:
        if any(name == phase for name, _ in skipped):
            assert "bitsandbytes" in dict(skipped)[phase]
            continue
        planned, ratio = rows[phase, "host"]
        assert planned > 0 and math.isfinite(ratio), (phase, output)
        assert (phase, "cuda") not in rows  # no CUDA rows on the CPU
    ratios = re.findall(r"^ratio (.+): (\S+)$", output, re.MULTILINE)
    assert {name for name, _ in ratios} >= {f"{phase} host measured/planned" for phase, _ in rows}
    step_ratios = [float(value) for name, value in ratios if name.endswith("step / bare step")]
    assert len(step_ratios) == 2 - len(skipped) and all(math.isfinite(value) and value > 0 for value in step_ratios)
    assert re.search(r"^bare diffusers\+peft\s+[\d.]+\s+1\.00$", output, re.MULTILINE)
    written = doc.read_text()
    assert written.startswith("# Benchmarks\n") and "<!-- bench:gpu_check.cpu-" in written and "## GPU check: CPU" in written
    assert "| training adamw |" in written and "`python benchmarks/gpu_check.py --device cpu --quick --write-doc" in written


def test_write_doc_replaces_the_section_of_the_same_device_only(tmp_path):
    doc = tmp_path / "benchmarks.md"
    gpu_check.write_doc(doc, "NVIDIA H100", "python benchmarks/gpu_check.py", "header", ["old table"], 0.0)
    doc.write_text(doc.read_text() + "\nkept\n")
    gpu_check.write_doc(doc, "NVIDIA H100", "python benchmarks/gpu_check.py", "header", ["new table"], 0.0)
    gpu_check.write_doc(doc, "CPU x86_64", "python benchmarks/gpu_check.py --device cpu", "header", ["cpu table"], 0.0)
    text = doc.read_text()
    assert "old table" not in text and text.count("## GPU check: NVIDIA H100") == 1 and "new table" in text
    assert text.index("<!-- bench:gpu_check.nvidia-h100 -->") < text.index("kept") < text.index("<!-- bench:gpu_check.cpu-x86_64 -->")
    assert text.rstrip().endswith("<!-- /bench:gpu_check.cpu-x86_64 -->")
