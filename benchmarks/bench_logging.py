"""Cost of full logging on a tiny training loop: bare steps vs metrics + TensorBoard on every step.

    python benchmarks/bench_logging.py [--steps 500] [--width 64] [--repeats 3] [--write-doc]

The logged loop calls, on every step, ``update_progress`` (its throughput
goes to metrics.jsonl and TensorBoard) and every per-step TensorBoardMonitor
method at the default flags (scalars every 10 steps, diagnostics every 50),
which feed the same metrics stream, as the trainer does. Each mode runs ``--repeats`` times; the fastest run counts,
so other work on the machine inflates neither side. Not part of the tests. `--write-doc` puts the table
into docs/benchmarks.md (section `logging`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from toolkit.logging import LogConfig, LogManager, setup_logging  # noqa: E402
from toolkit.monitoring.tensorboard import TensorBoardMonitor  # noqa: E402


def make_loop(width: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, target: torch.Tensor):
    optimizer.zero_grad(set_to_none=True)
    pred = model(inputs)
    loss = nn.functional.mse_loss(pred, target)
    loss.backward()
    grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), float("inf")))  # as the trainer does, both modes
    optimizer.step()
    return loss.detach(), pred.detach(), grad_norm


def run_bare(steps: int, width: int) -> float:
    model, optimizer = make_loop(width)
    batches = [(torch.randn(16, width), torch.randn(16, width)) for _ in range(8)]
    start = time.perf_counter()
    for step in range(steps):
        inputs, target = batches[step % len(batches)]
        train_step(model, optimizer, inputs, target)
    return time.perf_counter() - start


def run_logged(steps: int, width: int, log_dir: Path) -> float:
    model, optimizer = make_loop(width)
    batches = [(torch.randn(16, width), torch.randn(16, width)) for _ in range(8)]
    logger = setup_logging(LogConfig(name="bench", log_dir=log_dir, enable_tensorboard=True, progress_leave=False))
    monitor = TensorBoardMonitor(logger)
    monitor.log_model_architecture(0, {"model": model})
    timesteps = torch.linspace(0.05, 0.95, 16)
    logger.start_progress(total=steps, desc="bench")
    start = time.perf_counter()
    for step in range(steps):
        step_start = time.perf_counter()
        inputs, target = batches[step % len(batches)]
        loss, pred, grad_norm = train_step(model, optimizer, inputs, target)
        step_time = time.perf_counter() - step_start
        monitor.log_training(step, loss)
        monitor.log_learning_rate(step, [group["lr"] for group in optimizer.param_groups])
        monitor.log_performance(step, step_time)
        monitor.log_gradients(step, model.named_parameters(), grad_norm)
        logger.update_progress(1, batch_size=16, loss=loss)
        monitor.log_histograms(step, model.named_parameters())
        monitor.log_parameter_stats(step, model.named_parameters())
        monitor.log_system(step)
        monitor.log_diffusion(step, timesteps, pred, target)
        monitor.log_noise_analysis(step, pred, target)
        as_image = (1, 1, 16, width)
        monitor.log_noise_visualization(step, inputs.view(as_image), pred.view(as_image), target.view(as_image))
    elapsed = time.perf_counter() - start
    logger.finish()
    LogManager._instance = None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--width", type=int, default=64, help="features of each nn.Linear")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    torch.set_num_threads(1)

    bare = min(run_bare(args.steps, args.width) for _ in range(args.repeats))
    with tempfile.TemporaryDirectory() as folder:
        logged = min(run_logged(args.steps, args.width, Path(folder) / f"run{index}") for index in range(args.repeats))
    table = markdown_table(
        ("loop", "seconds", "ms per step", "ratio to bare"),
        [
            ("bare", f"{bare:.3f}", f"{1000.0 * bare / args.steps:.3f}", "1.00x"),
            ("metrics + TensorBoard every step", f"{logged:.3f}", f"{1000.0 * logged / args.steps:.3f}", f"{logged / bare:.2f}x"),
        ],
    )
    setting = f"{args.steps} steps of a 2-layer MLP of width {args.width}, 1 thread, the fastest of {args.repeats} runs of each"
    print(f"{setting}; {machine(load_before)}\n{table}")
    print(f"overhead: {1000.0 * (logged - bare) / args.steps:.3f} ms/step")
    if args.write_doc:
        what = (
            f"{setting}. The logged loop calls, every step, `update_progress` (throughput to metrics.jsonl and "
            "TensorBoard) and every per-step TensorBoardMonitor method at the default flags (scalars every 10 steps, "
            "diagnostics every 50), as the trainer does; the bare loop is the same training step alone. The ratio is "
            "logged / bare: the whole logging layer's cost on a step far cheaper than any real one (the trainer's own "
            "ratio is in [Observability per training step](#observability-per-training-step))."
        )
        body = report("Logging every step", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('logging', body)}")

if __name__ == "__main__":
    main()
