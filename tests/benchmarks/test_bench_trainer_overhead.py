"""benchmarks/bench_trainer_overhead.py's timed loop, in this process on a one-block LTX-2: the bare diffusers + peft
step runs on the trainer's own cached examples and both loops give a time for every step after the warm-up."""

from __future__ import annotations

import math
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_every_configuration_s_loop_times_the_trainer_against_the_bare_step(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their helpers by file name, as `python benchmarks/...`
    import bench_trainer_overhead as bench
    from tiny_trainer_timing import WARM_UP_STEPS

    model_folder = bench.small_ltx2(tmp_path, layers=1)
    steps = WARM_UP_STEPS + 3
    times = bench.interleaved_times(tmp_path, model_folder, "everything", steps, time.perf_counter)
    # the trainer's step is timed from one bare step to the next, so the last trainer step has no end mark
    assert len(times["bare"]) == steps - WARM_UP_STEPS and len(times["trainer"]) == steps - WARM_UP_STEPS - 1
    assert all(math.isfinite(t) and t > 0 for kind in times.values() for t in kind)
    summary = bench.summarise({"everything": [times]})["everything"]
    assert summary["ratio"] > 0 and "| everything |" in bench.table({"everything": summary})
