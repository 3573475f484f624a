"""What an evaluation of 4 held-out clips at 5 noise levels costs, as a multiple of one training step (tiny LTX-2).

    python benchmarks/bench_eval.py [--rounds 8] [--device cpu|cuda] [--write-doc]

Sets up the tiny example's trainer on the four demo clips with the same four clips held out
(`is_val`, a copy in another folder), then, interleaved in each round, times one training step
(`hook_train_loop`, batch 1), one evaluation with the default `eval_batch_size` (= batch_size 1:
20 forwards) and one with `eval_batch_size: 5` (a clip's five levels in one forward: 4 forwards).
Prints the median seconds of each and the evaluations' ratios to the step; `--write-doc` puts the table into
docs/benchmarks.md (section `eval`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from doc_section import command_line, load_average, machine, markdown_table, report, write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
WARM_UP_ROUNDS = 2


def _config(folder: Path, device: str) -> Path:
    held_out = folder / "held_out"
    held_out.mkdir()
    for clip in sorted((REPO_ROOT / "data/demo_clips").glob("demo_0*")):
        shutil.copy2(clip, held_out / clip.name)
    raw = yaml.safe_load((REPO_ROOT / "config/examples/train_lora_ltx2_tiny.yaml").read_text())
    raw["config"]["name"] = "bench_eval"
    process = raw["config"]["process"][0]
    process.update(training_folder=str(folder / "output"), device=device)
    dataset = {**process["datasets"][0], "folder_path": str(REPO_ROOT / "data/demo_clips"), "cache_latents_to_disk": False}
    process["datasets"] = [dataset, {**dataset, "folder_path": str(held_out), "is_val": True}]
    process["train"].update(steps=10_000, disable_sampling=True, eval_every=10_000)
    process["model"]["verbose"] = False
    process["logging"] = {"use_tensorboard": False, "progress_bar": False}
    path = folder / "bench_eval.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def described(setting: str) -> str:
    """What the section measures and against which baseline (docs/benchmarks.md)."""
    return (
        f"{setting} (the first {WARM_UP_ROUNDS} rounds dropped). The tiny example's trainer on the four demo clips, "
        "with the same four clips held out (`is_val`). Each round times, one after the other: one training step "
        "(`hook_train_loop`, batch 1), one evaluation of the 4 clips at 5 noise levels with `eval_batch_size` 1 "
        "(the default with `batch_size: 1`: 20 forwards) and one with `eval_batch_size: 5` (a clip's five levels "
        "in one forward: 4 forwards). The ratio is an evaluation's median seconds / the training step's: an "
        "evaluation every `eval_every` steps adds about ratio / `eval_every` to a run (twice that with an EMA, "
        "which evaluates both sets of weights)."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from toolkit.config import load_config
    from toolkit.job import Job

    times: dict[str, list[float]] = {"training step": [], "evaluation, eval_batch_size 1": [], "evaluation, eval_batch_size 5": []}

    def timed(name: str, work) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times[name].append(time.perf_counter() - started)

    def rounds(trainer) -> None:  # in place of the training loop, once everything is set up
        evaluation = trainer.evaluation
        for index in range(WARM_UP_ROUNDS + args.rounds):
            timed("training step", lambda: trainer.hook_train_loop(index))
            for batch in (1, 5):
                evaluation.loss.batch_size = batch
                timed(f"evaluation, eval_batch_size {batch}", lambda: evaluation.evaluate(index))
        if evaluation.loss.clips != 4 or len(evaluation.loss.sigmas) != 5:
            raise SystemExit(f"expected 4 clips at 5 levels, got {evaluation.loss.clips} at {evaluation.loss.sigmas}")
        trainer.saved = {}  # nothing is saved: the run's summary names no LoRA

    with tempfile.TemporaryDirectory() as folder:
        path = _config(Path(folder), args.device)
        trainer = Job(load_config(path), path).processes[0]
        trainer._train = lambda: rounds(trainer)
        trainer.run()
    medians = {name: statistics.median(values[WARM_UP_ROUNDS:]) for name, values in times.items()}
    step = medians["training step"]
    table = markdown_table(
        ("", "median seconds", "x one training step"),
        [(name, f"{median:.4f}", f"{median / step:.2f}x") for name, median in medians.items()],
    )
    setting = f"{args.rounds} rounds on {args.device} ({torch.get_num_threads()} CPU threads), medians"
    print(f"\n{setting}; {machine(load_before)}\n{table}")
    if args.write_doc:
        body = report("Evaluation cost", command_line(__file__), described(setting), [table], load_before)
        print(f"wrote {write_section('eval', body)}")


if __name__ == "__main__":
    main()
