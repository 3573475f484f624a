"""How long run.py takes for a config mistake, a dry run and the tiny example, as ratios.

    python benchmarks/bench_cli.py [--repeats 3] [--skip-train]

Every command runs in a fresh interpreter ``--repeats`` times and the fastest
run counts. Each time is printed as a ratio against a bare interpreter that
does the least the command must do anyway, measured in the same run:
- a config mistake and a dry run against ``python -c "import toolkit.config"``;
- the tiny example (100 steps, samples, saves) against
  ``python -c "import torch, diffusers"``.
So the numbers mean the same on a fast idle machine and a slow busy one.
These used to be wall-clock assertions in the tests. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
BAD_CONFIG = "job: extension\nconfig:\n  name: bench\n  process:\n    - type: sd_trainer\n      modle: {}\n"


def best_time(command: list[str], repeats: int, expect: int) -> float:
    """Fastest wall time of `command` over `repeats` runs; stops if it exits other than `expect`."""
    best = float("inf")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != expect:
            raise SystemExit(f"{' '.join(command)} exited {result.returncode}, not {expect}:\n{result.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def report(label: str, seconds: float, baseline_label: str, baseline: float) -> None:
    print(f"  {label:<34} {seconds:7.2f} s  = {seconds / baseline:5.1f}x {baseline_label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true", help="leave out the tiny example (about a minute a run)")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.yaml"
        bad.write_text(BAD_CONFIG)
        bare = best_time([python, "-c", "import toolkit.config"], args.repeats, 0)
        mistake = best_time([python, "run.py", str(bad)], args.repeats, 2)
        dry_run = best_time([python, "run.py", str(TINY_EXAMPLE), "--dry-run"], args.repeats, 0)
        print(f"best of {args.repeats} runs each")
        print(f"  {'bare: import toolkit.config':<34} {bare:7.2f} s")
        report("config mistake (exit 2)", mistake, "bare", bare)
        report("--dry-run of the tiny example", dry_run, "bare", bare)
        if args.skip_train:
            return
        heavy = best_time([python, "-c", "import torch, diffusers"], args.repeats, 0)
        train = best_time(
            [python, "run.py", str(TINY_EXAMPLE), "--set", f"config.process.0.training_folder={folder}/out"],
            1,
            0,
        )
        print(f"  {'bare: import torch, diffusers':<34} {heavy:7.2f} s")
        report("tiny example (100 steps, 1 run)", train, "bare torch+diffusers", heavy)


if __name__ == "__main__":
    main()
