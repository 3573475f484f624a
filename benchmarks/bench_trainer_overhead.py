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
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CONFIGS = {
    "bare": {"logging": {"use_tensorboard": False}, "verbose": False},
    "tensorboard": {"logging": {"use_tensorboard": True}, "verbose": False},
    "tb_every_step": {"logging": {"use_tensorboard": True, "log_every": 1, "diagnostic_every": 1}, "verbose": False},
    "verbose": {"logging": {"use_tensorboard": False}, "verbose": True},
}


def step_times(name: str, settings: dict, steps: int, folder: Path) -> list[float]:
    from toolkit.config import load_config
    from toolkit.job import Job
    from toolkit.trace import reset_tracer

    raw = yaml.safe_load((REPO_ROOT / "config/examples/train_lora_ltx2_tiny.yaml").read_text())
    raw["config"]["name"] = f"bench_{name}"
    process = raw["config"]["process"][0]
    process["training_folder"] = str(folder)
    process["datasets"][0]["folder_path"] = str(REPO_ROOT / "data/demo_clips")
    process["train"].update({"steps": steps, "disable_sampling": True})
    process["save"]["save_every"] = steps * 10
    process["model"]["verbose"] = settings["verbose"]
    process["logging"] = {**process.get("logging", {}), **settings["logging"], "progress_bar": False}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    trainer = Job(load_config(path), path).processes[0]
    times: list[float] = []
    original = trainer.hook_train_loop

    def timed(step: int):
        started = time.perf_counter()
        result = original(step)
        times.append(time.perf_counter() - started)
        return result

    trainer.hook_train_loop = timed
    trainer.run()
    reset_tracer()
    return times[5:]  # the first steps warm up allocators and caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        medians = {}
        for name, settings in CONFIGS.items():
            medians[name] = statistics.median(step_times(name, settings, args.steps, Path(folder)))
    bare = medians["bare"]
    print(f"\n{'configuration':<15}{'median step':>14}{'ratio to bare':>16}")
    for name, median in medians.items():
        print(f"{name:<15}{median * 1000:>11.2f} ms{median / bare:>15.2f}x")


if __name__ == "__main__":
    main()
