"""Measure everything in docs/benchmarks.md again: every benchmark's `--write-doc` command, one after the other.

    python benchmarks/refresh_docs.py                        # all of them (about an hour on 2 idle cores)
    python benchmarks/refresh_docs.py --list                 # the commands, one a line
    python benchmarks/refresh_docs.py --only eval ui         # some of them (names as --list prints them)

These are the commands each section of docs/benchmarks.md names; run them on an idle machine (each section
records the load average). With CUDA, the GPU rows are added (gpu_check, offloading, the memory plan on CUDA).
A command that fails is reported and the others still run; the exit code is 1 when any failed.
`bench_load_throughput.py` writes about 5 GB to the temporary folder; `bench_ui.py` needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# name -> the script and its arguments; the script writes its own section(s) of docs/benchmarks.md.
COMMANDS: dict[str, list[str]] = {
    "trainer_overhead": ["bench_trainer_overhead.py", "--layers", "8", "--steps", "60", "--repeats", "2", "--clock", "wall"],
    "trainer_overhead.cpu": ["bench_trainer_overhead.py", "--layers", "8", "--steps", "60", "--repeats", "2", "--clock", "cpu"],
    "time_to_first_step": ["bench_time_to_first_step.py", "--steps", "12", "--repeats", "3", "--clock", "wall"],
    "time_to_first_step.cpu": ["bench_time_to_first_step.py", "--steps", "12", "--repeats", "3", "--clock", "cpu"],
    "eval": ["bench_eval.py", "--rounds", "8"],
    "cli": ["bench_cli.py", "--repeats", "3"],
    "preflight_media": ["bench_preflight_media.py", "--repeats", "7"],
    "null_span": ["bench_null_span.py", "--iterations", "100000", "--repeats", "3"],
    "logging": ["bench_logging.py", "--steps", "500", "--width", "64", "--repeats", "3"],
    "tensorboard_samples": ["bench_tensorboard_samples.py", "--repeats", "3"],
    "offline_hub": ["bench_offline_hub.py", "--repeats", "3"],
    "inspection": ["bench_inspection.py", "--steps", "60", "--repeats", "2"],
    "ui": ["bench_ui.py", "--steps", "40", "--repeats", "2"],
    "load_peak": ["bench_load_peak.py", "--layers", "24", "--heads", "8", "--qtype", "qint8"],
    "load_throughput": ["bench_load_throughput.py", "--layers", "5", "--repeats", "5"],
    "memory_plan_real_width": ["bench_memory_plan_real_width.py", "--layers", "2", "--rank", "16"],
    "offloading.cpu": ["bench_offloading.py", "--device", "cpu"],
    "gpu_check.cpu": ["gpu_check.py", "--device", "cpu"],
}
CUDA_COMMANDS: dict[str, list[str]] = {
    "gpu_check.cuda": ["gpu_check.py"],
    "offloading.cuda": ["bench_offloading.py", "--device", "cuda", "--layers", "8", "--qtype", "qfloat8"],
    "memory_plan_real_width.cuda": ["bench_memory_plan_real_width.py", "--device", "cuda", "--layers", "2", "--rank", "16"],
}


def commands(cuda: bool) -> dict[str, list[str]]:
    """Every command to run here, as argv lists run from the repository root (`--write-doc` last)."""
    chosen = {**COMMANDS, **(CUDA_COMMANDS if cuda else {})}
    return {name: [sys.executable, f"benchmarks/{script}", *arguments, "--write-doc"] for name, (script, *arguments) in chosen.items()}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the commands and run nothing")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these (names as --list prints them)")
    args = parser.parse_args(argv)
    chosen = commands(cuda_available())
    unknown = sorted(set(args.only or ()) - set(chosen))
    if unknown:
        raise SystemExit(f"--only: no command named {', '.join(unknown)} (there are: {', '.join(chosen)})")
    if args.only:
        chosen = {name: command for name, command in chosen.items() if name in args.only}
    if args.list:
        for name, command in chosen.items():
            print(f"{name:<28} python {shlex.join(command[1:])}")
        return 0
    failed = []
    for name, command in chosen.items():
        print(f"== {name}: python {shlex.join(command[1:])}", flush=True)
        started = time.perf_counter()
        if subprocess.run(command, cwd=REPO_ROOT, check=False).returncode != 0:
            failed.append(name)
        print(f"== {name}: {'FAILED' if name in failed else 'done'} in {time.perf_counter() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
