"""Start-up of the tiny example, phase by phase, as ratios to a bare training step.

    python benchmarks/bench_time_to_first_step.py [--repeats 3] [--steps 12] [--clock wall|cpu] [--check] [--write-doc]

Every run is a fresh interpreter (a worker of this script) that goes through the phases in the
order a run does, timing each:
  imports      every module the run has imported by its first step (the list is recorded by an
               untimed run first), imported in the order the run imported them, with the garbage
               collector paused as run.py pauses it
  config       reading and checking the YAML as run.py does (schema, checks before loading,
               the job and its process, what was imported set aside from garbage collection)
  load         LTX2Model.load_model: every component read (transformer and text encoder streamed)
  caching      the clips' latents and the captions' embeddings, through the caches on disk
  set-up       the rest before the first step (the disk checked for the saves, text encoder freed, LoRA,
               optimizer, callbacks)
  first step   the first hook_train_loop
The bare step is what it always was here: the median hook_train_loop of the same run after the
first 5 steps. "time to first step" is load + caching + set-up + first step (what a run spends
after its imports and config; the goal is at most 10x a bare step); "start-up" adds the imports
and the config. Two situations of the tiny example (TensorBoard, the trace and sampling off):
  first run    the caches are empty: every clip is decoded and encoded, every caption encoded
  rerun        the caches hold every clip and caption (a resume, or a new run in the same folder)
and the first run once more with the load through from_pretrained (streaming switched off), for
the ratio of the two loaders. `run.py --help` is timed too (a fresh interpreter, end to end).
Each figure is the median of --repeats runs; the situations alternate; workers run with
OMP_NUM_THREADS=1 unless it is set. --clock cpu counts the
process's CPU seconds instead of wall seconds (steadier on a machine busy with other work;
disk waits do not count). --check exits 1 when the first run's time to first step is above 10x.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import command_line, load_average, machine, report, write_section
from tiny_trainer_timing import WARM_UP_STEPS, tiny_config, use_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
RUN_PHASES = ("load", "caching", "set-up", "first step")
PHASES = ("imports", "config", *RUN_PHASES)
GOAL = 10.0
SITUATIONS = {"first run": {"cached": False, "streamed": True}, "rerun": {"cached": True, "streamed": True}}
FROM_PRETRAINED = {"cached": False, "streamed": False}
RUN_NAME = "ttfs"


def _timed(times: dict, name: str, method, clock):
    def wrapper(*args, **kwargs):
        started = clock()
        try:
            return method(*args, **kwargs)
        finally:
            times.setdefault(name, []).append(clock() - started)

    return wrapper


def import_all(modules: list[str]) -> int:
    """Import `modules` in order (those a fresh interpreter cannot import by name are left out); how many."""
    imported = 0
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            imported += 1
        except Exception:  # noqa: BLE001 - built-in submodules and the like have no importable name
            continue
    return imported


def prepare_folder(folder: Path, cached: bool) -> None:
    """An empty run folder, or (`cached`) one that keeps only the caches of the run before."""
    run_folder = folder / RUN_NAME
    if not cached or not run_folder.exists():
        shutil.rmtree(run_folder, ignore_errors=True)
        return
    from extensions_built_in.sd_trainer.training_data import LATENT_CACHE_DIR, TEXT_CACHE_DIR

    for entry in run_folder.iterdir():
        if entry.name not in (LATENT_CACHE_DIR, TEXT_CACHE_DIR):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def worker(folder: Path, steps: int, cached: bool, streamed: bool, modules: list[str], clock) -> dict:
    """One run of the tiny example in this (fresh) interpreter; seconds of each phase, the bare step, and the
    modules imported by the first step (in the order they were)."""
    started = clock()
    gc.disable()  # as run.py's command line while it imports and checks the config (toolkit/gc_pause.py)
    use_tree(REPO_ROOT)
    imported = import_all(modules)
    times: dict[str, list[float]] = {"imports": [clock() - started]}
    prepare_folder(folder, cached)
    path = tiny_config(REPO_ROOT, folder, steps, {}, name=RUN_NAME, cache_latents=True)

    started = clock()
    import run
    from toolkit.job import Job, resolve_process_classes

    configs, errors = run.validate_all([path], [], False)
    if errors:
        raise SystemExit(f"the tiny config is invalid: {errors[0]}")
    resolve_process_classes(configs[0][1])
    trainer = Job(configs[0][1], path).processes[0]
    run.set_aside_imports()  # as run.py does before the first job
    gc.enable()
    times["config"] = [clock() - started]

    from extensions_built_in.diffusion_models.ltx2 import streaming
    from toolkit.trace import reset_tracer

    marks: dict[str, float] = {}
    trainer._load_model = _timed(times, "load", trainer._load_model, clock)
    trainer._encode_data = _timed(times, "caching", trainer._encode_data, clock)
    hook = _timed(times, "step", trainer.hook_train_loop, clock)
    seen: list[str] = []

    def first_mark(step):
        if "first_step_start" not in marks:
            marks["first_step_start"] = clock()
            seen.extend(sys.modules)
        return hook(step)

    trainer.hook_train_loop = first_mark
    if not streamed:
        streaming.plan_stream = lambda source, component, dtype: streaming.StreamPlan(component, reason="benchmark")
    started = clock()
    try:
        trainer.run()
    finally:
        reset_tracer()
    setup = marks["first_step_start"] - started - times["load"][0] - times["caching"][0]
    return {
        "imports": times["imports"][0],
        "config": times["config"][0],
        "load": times["load"][0],
        "caching": times["caching"][0],
        "set-up": setup,
        "first step": times["step"][0],
        "bare step": statistics.median(times["step"][WARM_UP_STEPS:]),
        "imported": imported,
        "modules": seen,
    }


def run_worker(folder: Path, steps: int, setting: dict, modules: list[str], clock_name: str) -> dict:
    modules_file = folder / "modules.json"
    modules_file.write_text(json.dumps(modules))
    command = [sys.executable, __file__, "--worker", "--folder", str(folder), "--steps", str(steps)]
    command += ["--modules", str(modules_file), "--clock", clock_name]
    command += ["--cached"] * setting["cached"] + ["--from-pretrained"] * (not setting["streamed"])
    # One thread unless asked otherwise, as bench_trainer_overhead: threads fighting other work on a busy machine
    # swing each phase far more than the phases differ.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"worker {setting} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def help_seconds(clock_name: str) -> float:
    """`python run.py --help` in a fresh interpreter: wall seconds, or the child's CPU seconds."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run([sys.executable, "run.py", "--help"], cwd=REPO_ROOT, capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = os.times()
    return wall if clock_name == "wall" else (after.children_user - before.children_user) + (after.children_system - before.children_system)


def median_run(runs: list[dict]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in (*PHASES, "bare step")}


def table(medians: dict[str, dict[str, float]], from_pretrained: dict[str, float], help_s: float) -> str:
    names = list(medians)
    lines = [
        "| phase | " + " | ".join(f"{name}: seconds | {name}: x bare step" for name in names) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in names) + " |",
    ]

    def row(label: str, values: list[float]) -> str:
        cells = " | ".join(f"{value:.3f} | {value / medians[name]['bare step']:.1f}x" for name, value in zip(names, values))
        return f"| {label} | {cells} |"

    for phase in PHASES:
        lines.append(row(phase, [medians[name][phase] for name in names]))
    lines.append(row("**time to first step** (load to first step)", [sum(medians[n][p] for p in RUN_PHASES) for n in names]))
    lines.append(row("start-up (imports to first step)", [sum(medians[n][p] for p in PHASES) for n in names]))
    lines.append(row("bare step (median)", [medians[name]["bare step"] for name in names]))
    bare = medians[names[0]]["bare step"]
    lines.append(f"| load via from_pretrained (first run) | {from_pretrained['load']:.3f} | "
                 f"{from_pretrained['load'] / from_pretrained['bare step']:.1f}x |")  # fmt: skip
    lines.append(f"| `run.py --help` (fresh interpreter) | {help_s:.3f} | {help_s / bare:.1f}x |")
    return "\n".join(lines)


def described(setting: str) -> str:
    """What the section measures and against which baseline (docs/benchmarks.md)."""
    return (
        f"{setting}. Each run is a fresh interpreter going through the phases a run goes through: imports "
        "(every module the run has imported by its first step), config (read and checked as run.py does), load, "
        "caching (latents and prompt embeddings), set-up (the disk checked for the saves, text encoder freed, LoRA, "
        "optimizer, callbacks) and the first step. Each phase is divided by the bare step: the median `hook_train_loop` of the same run after "
        f"{WARM_UP_STEPS} steps. Time to first step is load to first step (goal: at most {GOAL:g}x a bare step, "
        "`--check`); start-up adds the imports and the config. First run: empty caches; rerun: the latent and "
        "text caches filled, as on a resume. `from_pretrained` is the first run with streamed loading off; "
        "`run.py --help` is timed end to end in a fresh interpreter."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the first run's time to first step is above {GOAL:g}x")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--modules", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cached", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--from-pretrained", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps <= WARM_UP_STEPS:
        raise SystemExit(f"--steps must be more than the {WARM_UP_STEPS} warm-up steps")
    if args.worker:
        modules = json.loads(args.modules.read_text())
        result = worker(args.folder, args.steps, args.cached, not args.from_pretrained, modules, CLOCKS[args.clock])
        print(json.dumps(result))
        return

    load_before = load_average()
    runs: dict[str, list[dict]] = {name: [] for name in (*SITUATIONS, "from_pretrained")}
    settings = {**SITUATIONS, "from_pretrained": FROM_PRETRAINED}
    with tempfile.TemporaryDirectory() as folder:
        # Untimed: builds the tiny model, fills the caches and the OS file cache, and lists the run's modules.
        modules = run_worker(Path(folder), args.steps, SITUATIONS["first run"], [], args.clock)["modules"]
        for repeat in range(args.repeats):
            order = list(settings) if repeat % 2 == 0 else list(reversed(settings))
            for name in order:
                runs[name].append(run_worker(Path(folder), args.steps, settings[name], modules, args.clock))
    help_s = statistics.median(help_seconds(args.clock) for _ in range(args.repeats))
    medians = {name: median_run(runs[name]) for name in SITUATIONS}
    from_pretrained = median_run(runs["from_pretrained"])
    setting = (
        f"tiny example, {args.steps} steps, median of {args.repeats} fresh interpreters per situation, {args.clock} clock, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}, {len(modules)} modules imported by the first step"
    )
    print(f"\n{setting}; {machine(load_before)}\n{table(medians, from_pretrained, help_s)}\n")
    ratios = {name: sum(medians[name][p] for p in RUN_PHASES) / medians[name]["bare step"] for name in SITUATIONS}
    for name, ratio in ratios.items():
        print(f"ratio time_to_first_step {name.replace(' ', '_')} {ratio:.1f}")
    print(f"streamed load / from_pretrained load: {medians['first run']['load'] / from_pretrained['load']:.2f}")
    if args.write_doc:
        title = "Time to first step" + ("" if args.clock == "wall" else f", {args.clock} clock")
        body = report(title, command_line(__file__), described(setting), [table(medians, from_pretrained, help_s)], load_before)
        section = "time_to_first_step" if args.clock == "wall" else f"time_to_first_step.{args.clock}"
        print(f"wrote {write_section(section, body)}")
    if args.check and ratios["first run"] > GOAL:
        print(f"check failed: the first run's time to first step is {ratios['first run']:.1f}x a bare step (goal {GOAL:g}x)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
