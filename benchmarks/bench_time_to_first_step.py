"""Time to the first training step of the tiny example, split into load, caching, set-up and first step.

    python benchmarks/bench_time_to_first_step.py [--steps 12] [--repeats 2]

Runs the tiny example's trainer (sampling off, no latent cache on disk, so caching
really encodes) in this process, timing the trainer's phases as they happen:
  load         LTX2Model.load_model: every component read, the transformer and
               text encoder streamed block by block
  caching      encoding every clip's latents and prompt embeddings
  set-up       the rest before the first step (LoRA, optimizer, callbacks)
  first step   the first hook_train_loop
Each phase is printed in seconds and as a ratio to a bare step (the median
hook_train_loop after the warm-up), which is what carries from one machine to
another. The load is also run through from_pretrained (streaming switched off)
for the ratio of the two loaders. Each figure is the median of --repeats runs (alternating which loader goes first, after one
untimed load each way).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tiny_trainer_timing import WARM_UP_STEPS, tiny_trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
PHASES = ("load", "caching", "set-up", "first step")


def _timed(times: dict, name: str, method):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times.setdefault(name, []).append(time.perf_counter() - started)

    return wrapper


def phase_times(folder: Path, steps: int, streamed: bool, name: str) -> dict[str, float]:
    """One run of the tiny trainer: seconds of each phase, and the median step after the warm-up."""
    trainer = tiny_trainer(REPO_ROOT, folder, steps, {}, name=name)
    from extensions_built_in.diffusion_models.ltx2 import streaming
    from toolkit.trace import reset_tracer

    times: dict[str, list[float]] = {}
    marks: dict[str, float] = {}
    trainer._load_model = _timed(times, "load", trainer._load_model)
    trainer._encode_data = _timed(times, "caching", trainer._encode_data)
    hook = _timed(times, "step", trainer.hook_train_loop)

    def first_mark(step):
        marks.setdefault("first_step_start", time.perf_counter())
        return hook(step)

    trainer.hook_train_loop = first_mark
    plan_stream = streaming.plan_stream
    if not streamed:
        streaming.plan_stream = lambda source, component, dtype: streaming.StreamPlan(component, reason="benchmark")
    try:
        started = time.perf_counter()
        trainer.run()
    finally:
        streaming.plan_stream = plan_stream
        reset_tracer()
    setup = marks["first_step_start"] - started - times["load"][0] - times["caching"][0]
    return {
        "load": times["load"][0],
        "caching": times["caching"][0],
        "set-up": setup,
        "first step": times["step"][0],
        "bare step": statistics.median(times["step"][WARM_UP_STEPS:]),
    }


def warm_up() -> None:
    """Load the tiny model once each way first, so that neither loader pays for first imports and file caches."""
    from extensions_built_in.diffusion_models.ltx2 import streaming
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.config import ModelConfig

    config = ModelConfig(name_or_path="tiny-ltx2", arch="ltx2", dtype="fp32")
    LTX2Model(config, "cpu").load_model()
    plan_stream = streaming.plan_stream
    streaming.plan_stream = lambda source, component, dtype: streaming.StreamPlan(component, reason="benchmark")
    try:
        LTX2Model(config, "cpu").load_model()
    finally:
        streaming.plan_stream = plan_stream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.steps <= WARM_UP_STEPS:
        raise SystemExit(f"--steps must be more than the {WARM_UP_STEPS} warm-up steps")
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        tiny_trainer(REPO_ROOT, Path(folder), args.steps, {}, name="ttfs_import")  # puts this tree on sys.path
        warm_up()
        for repeat in range(args.repeats):
            for streamed in (True, False) if repeat % 2 == 0 else (False, True):
                runs[streamed].append(phase_times(Path(folder), args.steps, streamed, f"ttfs_{repeat}_{int(streamed)}"))
    median = {streamed: {key: statistics.median(run[key] for run in found) for key in found[0]} for streamed, found in runs.items()}
    streamed = median[True]
    bare = streamed["bare step"]
    print(f"\n{'phase':<26}{'seconds':>10}{'ratio to a bare step':>24}")
    for phase in PHASES:
        print(f"{phase:<26}{streamed[phase]:>10.3f}{streamed[phase] / bare:>23.1f}x")
    to_first = sum(streamed[phase] for phase in PHASES)
    print(f"{'time to first step':<26}{to_first:>10.3f}{to_first / bare:>23.1f}x")
    print(f"{'bare step (median)':<26}{bare:>10.3f}{1.0:>23.1f}x")
    old = median[False]["load"]
    print(f"{'load via from_pretrained':<26}{old:>10.3f}{old / median[False]['bare step']:>23.1f}x")
    print(f"\nstreamed load / from_pretrained load: {streamed['load'] / old:.2f}")


if __name__ == "__main__":
    main()
