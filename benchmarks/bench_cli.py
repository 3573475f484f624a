"""How long run.py takes for a config mistake, a dry run and the tiny example, as ratios.

    python benchmarks/bench_cli.py [--repeats 3] [--skip-train] [--write-doc]

Every command runs in a fresh interpreter ``--repeats`` times and the fastest
run counts. Each time is printed as a ratio against a bare interpreter that
does the least the command must do anyway, measured in the same run:
- a config mistake and a dry run against ``python -c "import toolkit.config"``;
- the tiny example (100 steps, samples, saves) against
  ``python -c "import torch, diffusers"``.
So the numbers mean the same on a fast idle machine and a slow busy one.
These used to be wall-clock assertions in the tests. Not part of the tests. `--write-doc` puts the
table into docs/benchmarks.md (section `cli`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import command_line, load_average, machine, markdown_table, report, write_section

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true", help="leave out the tiny example (about a minute a run)")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    python = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.yaml"
        bad.write_text(BAD_CONFIG)
        bare = best_time([python, "-c", "import toolkit.config"], args.repeats, 0)
        rows.append(("bare: `python -c \"import toolkit.config\"`", bare, bare))
        rows.append(("config mistake (exit 2)", best_time([python, "run.py", str(bad)], args.repeats, 2), bare))
        rows.append(("`--dry-run` of the tiny example", best_time([python, "run.py", str(TINY_EXAMPLE), "--dry-run"], args.repeats, 0), bare))
        if not args.skip_train:
            heavy = best_time([python, "-c", "import torch, diffusers"], args.repeats, 0)
            train = best_time(
                [python, "run.py", str(TINY_EXAMPLE), "--set", f"config.process.0.training_folder={folder}/out"], 1, 0
            )
            rows.append(("bare: `python -c \"import torch, diffusers\"`", heavy, heavy))
            rows.append(("tiny example (100 steps, samples, saves; 1 run)", train, heavy))
    table = markdown_table(
        ("command", "seconds", "x its bare interpreter"), [(label, f"{s:.2f}", f"{s / base:.1f}x") for label, s, base in rows]
    )
    print(f"best of {args.repeats} runs each; {machine(load_before)}\n{table}")
    if args.write_doc:
        what = (
            f"Each command runs in a fresh interpreter, the fastest of {args.repeats} runs counting (the tiny example: "
            "1 run). Each is divided by the bare interpreter above it, measured in the same run: the least the command "
            "must do anyway (a config mistake and a dry run import the config schema; the tiny example imports torch "
            f"and diffusers). OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}."
        )
        body = report("Command-line runs", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('cli', body)}")

if __name__ == "__main__":
    main()
