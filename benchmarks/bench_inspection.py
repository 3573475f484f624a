"""What inspection costs per training step on the tiny LTX-2, and what it costs when it is off.

    python benchmarks/bench_inspection.py [--steps 60] [--repeats 2] [--before COMMIT] [--write-doc]

Times `hook_train_loop` (callbacks included; loading, caching and saving excluded; the first
5 steps dropped as warm-up) in a fresh process per run, TensorBoard and the trace off:
  before     the trainer at COMMIT (default: the commit before the latent monitor and the
             inspection callbacks were added), from `git archive`, inspection not there at all
  off        this tree, logging.inspect off: the seam is the wants_details check per step
  idle       inspection on with inspect_every larger than the run: registered, never due
  every_10   inspection on, every 10th step (an extra forward, decodes, files, TensorBoard)
Prints the median and mean step time of each and their ratios to `before` (the mean carries
the inspected steps of every_10, the median the steps in between); runs alternate, `--repeats`
times each, so a slow moment of a shared machine does not land on one configuration only.
`--write-doc` puts the table into docs/benchmarks.md (section `inspection`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from doc_section import command_line, load_average, machine, markdown_table, report, write_section
from tiny_trainer_timing import WARM_UP_STEPS, hook_step_times

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "before": None,
    "off": {"inspect": False},
    "idle": {"inspect": True, "inspect_every": 1_000_000},
    "every_10": {"inspect": True, "inspect_every": 10},
}
def run_worker(repo: Path, name: str, steps: int) -> list[float]:
    """One configuration in a fresh process (imports, caches and allocator state do not carry over)."""
    settings = {} if CONFIGS[name] is None else CONFIGS[name]
    command = [sys.executable, __file__, "--worker", "--repo", str(repo), "--settings", json.dumps(settings)]
    command += ["--steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_commit(commit: str, folder: Path) -> Path:
    """The tree of `commit` as files under `folder` (git archive: the repository itself is not touched)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def default_before() -> str:
    added = subprocess.run(
        ["git", "log", "--format=%H", "--diff-filter=A", "--", "toolkit/monitoring/latents.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("toolkit/monitoring/latents.py is not committed here; pass --before COMMIT")
    return f"{added[-1]}^"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", help="commit to time as 'before' (default: the one before the latent monitor)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    if args.worker:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(hook_step_times(args.repo, Path(folder), args.steps, json.loads(args.settings))))
        return

    load_before = load_average()
    before = args.before or default_before()
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        before_repo = export_commit(before, Path(folder))
        for _ in range(args.repeats):
            for name in CONFIGS:
                times[name] += run_worker(before_repo if name == "before" else REPO_ROOT, name, args.steps)
    medians = {name: statistics.median(values) for name, values in times.items()}
    means = {name: statistics.fmean(values) for name, values in times.items()}
    rows = [
        (name, f"{medians[name] * 1000:.2f} ms", f"{medians[name] / medians['before']:.3f}x",
         f"{means[name] * 1000:.2f} ms", f"{means[name] / means['before']:.3f}x")
        for name in CONFIGS
    ]
    inspected = [t for t in times["every_10"] if t > 3 * medians["off"]]
    if inspected:
        inspected_s = statistics.median(inspected)
        rows.append(("an inspected step (every_10)", f"{inspected_s * 1000:.2f} ms", f"{inspected_s / medians['before']:.3f}x", "", ""))
    table = markdown_table(("configuration", "median step", "ratio to before", "mean step", "ratio to before"), rows)
    setting = f"{args.steps} steps x {args.repeats} runs of each configuration, first {WARM_UP_STEPS} of each run dropped"
    print(f"\nbefore = {before}; {setting}; {machine(load_before)}\n{table}")
    if args.write_doc:
        what = (
            f"The tiny example's `hook_train_loop` (callbacks included; loading, caching and saving excluded), {setting}, "
            "each run a fresh process, TensorBoard and the trace off, configurations alternating. The baseline, "
            f"`before`, is the trainer at commit {before[:12]} (the one before the latent monitor and the inspection "
            "callbacks were added, exported with `git archive`): the ratio is each configuration's step / that "
            "trainer's step. `off`: this tree, `logging.inspect` off; `idle`: inspection on, never due; `every_10`: "
            "inspecting every 10th step (an extra forward, decodes, files). The median carries the steps in between; "
            "the mean carries the inspected steps."
        )
        body = report("Inspection", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('inspection', body)}")

if __name__ == "__main__":
    main()
