"""What observability costs per training step on the tiny LTX-2, as ratios against a bare run.

    python benchmarks/bench_trainer_overhead.py [--steps 80]

Runs the tiny example's trainer in this process several ways and times `hook_train_loop`
(the step itself, callbacks included; loading, caching, sampling and saving excluded):
  bare           TensorBoard off, model.verbose off
  tensorboard    every category on at the defaults (log_every 10, diagnostic_every 50)
  tb_every_step  every category on, written every step (the worst case)
  verbose        model.verbose on (first 3 steps, then every 10th traced) with TensorBoard off
Prints median step times and each configuration's ratio to bare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tiny_trainer_timing import hook_step_times

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "bare": {"logging": {"use_tensorboard": False}, "verbose": False},
    "tensorboard": {"logging": {"use_tensorboard": True}, "verbose": False},
    "tb_every_step": {"logging": {"use_tensorboard": True, "log_every": 1, "diagnostic_every": 1}, "verbose": False},
    "verbose": {"logging": {"use_tensorboard": False}, "verbose": True},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        medians = {}
        for name, settings in CONFIGS.items():
            times = hook_step_times(REPO_ROOT, Path(folder), args.steps, settings["logging"], settings["verbose"], f"bench_{name}")
            medians[name] = statistics.median(times)
    bare = medians["bare"]
    print(f"\n{'configuration':<15}{'median step':>14}{'ratio to bare':>16}")
    for name, median in medians.items():
        print(f"{name:<15}{median * 1000:>11.2f} ms{median / bare:>15.2f}x")


if __name__ == "__main__":
    main()
