"""What observability costs per training step, as a ratio to a bare diffusers + peft step in the same run.

    python benchmarks/bench_trainer_overhead.py [--layers 8] [--steps 60] [--repeats 2] [--clock wall|cpu]
                                                [--check] [--write-doc]

The model is a small LTX-2: the tiny model's widths with `--layers` transformer blocks (8 by default),
saved once in diffusers layout and loaded by the trainer like any checkpoint. Each configuration
trains in a fresh process, and inside that run every trainer step is preceded by one step of a
bare loop, so the two are timed interleaved on the same machine at the same moment:
  bare loop      the same transformer from `from_pretrained`, a peft LoRA on the trainer's target
                 modules (same rank and alpha), AdamW, on the trainer's own cached latents and
                 prompt embeddings: pack, noise, forward, MSE, backward, clip the gradients to
                 train.max_grad_norm (as diffusers' training examples do), step. No trainer code.
  trainer step   one pass of the trainer's loop: `hook_train_loop` (callbacks included), the progress
                 bar and its throughput metrics, the save and sample checks (nothing is due).
The configurations:
  off            TensorBoard off, model.verbose off, no inspection
  verbose        model.verbose on (the trace; the tiny example's trace_every), nothing else
  tensorboard    TensorBoard at the defaults (log_every 10, diagnostic_every 50)
  everything     TensorBoard every step, diagnostics every 10, inspection every 10, model.verbose on
Prints each configuration's median trainer step, the median bare step of the same run and their
ratio (the median of the runs' ratios), and the mean step's ratio (which carries the steps that
inspect). `--check` exits 1 when `everything`'s median ratio is above 1.10. `--clock cpu` times the
process's CPU seconds instead of wall seconds (all its threads, so work moved to the metrics writer
thread still counts): steadier on a machine busy with other work. The first
WARM_UP_STEPS steps of each run are dropped; configurations alternate order between repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import command_line, load_average, machine, markdown_table, report, write_section
from tiny_trainer_timing import WARM_UP_STEPS, tiny_trainer, use_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECK_LIMIT = 1.10
# wall: what a user waits (the goal). cpu: the process's CPU seconds, every thread of it (the metrics writer
# included), which a machine busy with other work disturbs much less; for comparing changes there.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CONFIGS = {
    "off": {"logging": {"use_tensorboard": False}, "verbose": False},
    "verbose": {"logging": {"use_tensorboard": False}, "verbose": True},
    "tensorboard": {"logging": {"use_tensorboard": True}, "verbose": False},
    "everything": {
        "logging": {"use_tensorboard": True, "log_every": 1, "diagnostic_every": 10, "inspect": True, "inspect_every": 10},
        "verbose": True,
    },
}


def small_ltx2(folder: Path, layers: int) -> Path:
    """The tiny LTX-2 with `layers` transformer blocks, in diffusers layout under `folder`."""
    use_tree(REPO_ROOT)
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_SEED, ensure_tiny_ltx2

    target = folder / f"ltx2-{layers}-layers"
    # Without the tiny model's marker it is an ordinary diffusers folder to the loader.
    shutil.copytree(ensure_tiny_ltx2(), target, ignore=shutil.ignore_patterns("tiny_ltx2.json"))
    config = LTX2VideoTransformer3DModel.load_config(target / "transformer")
    torch.manual_seed(TINY_SEED + 1)
    transformer = LTX2VideoTransformer3DModel.from_config({**config, "num_layers": layers})
    transformer.save_pretrained(target / "transformer", safe_serialization=True)
    return target


class BareLoop:
    """LoRA training as a diffusers + peft user writes it, on the latents the trainer cached."""

    def __init__(self, model_folder: Path, trainer, clock=time.perf_counter) -> None:
        import torch
        from diffusers import LTX2VideoTransformer3DModel
        from peft import LoraConfig

        network = trainer.network
        self.transformer = LTX2VideoTransformer3DModel.from_pretrained(model_folder / "transformer")
        self.transformer.requires_grad_(False)
        self.transformer.add_adapter(
            LoraConfig(r=network.rank, lora_alpha=network.alpha, target_modules=list(network.target_modules))
        )
        self.transformer.train()
        self.trainable = [p for p in self.transformer.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=trainer.config.train.lr)
        self.max_grad_norm = trainer.config.train.max_grad_norm or float("inf")
        self.examples = trainer.data.examples
        self.generator = torch.Generator().manual_seed(0)
        self.clock = clock

    def step(self, index: int) -> float:
        """One optimizer step on example `index` (cycling); returns its seconds."""
        import torch
        import torch.nn.functional as F

        started = self.clock()
        example = self.examples[index % len(self.examples)]
        video, audio = example.video_latents.unsqueeze(0), example.audio_latents.unsqueeze(0)
        sigma = torch.rand(1, generator=self.generator)
        video_noise = torch.randn(video.shape, generator=self.generator)
        audio_noise = torch.randn(audio.shape, generator=self.generator)
        noisy_video = (1 - sigma) * video + sigma * video_noise
        noisy_audio = (1 - sigma) * audio + sigma * audio_noise
        _, channels, frames, height, width = video.shape
        t = sigma * 1000.0
        video_pred, audio_pred = self.transformer(
            hidden_states=noisy_video.flatten(2).transpose(1, 2),
            audio_hidden_states=noisy_audio.transpose(1, 2).flatten(2, 3),
            encoder_hidden_states=example.prompt["video"],
            audio_encoder_hidden_states=example.prompt["audio"],
            timestep=t,
            audio_timestep=t,
            sigma=t,
            audio_sigma=t,
            encoder_attention_mask=example.prompt.attention_mask,
            audio_encoder_attention_mask=example.prompt.attention_mask,
            num_frames=frames,
            height=height,
            width=width,
            fps=example.fps,
            audio_num_frames=audio.shape[2],
            return_dict=False,
        )
        video_target = (video_noise - video).flatten(2).transpose(1, 2)
        audio_target = (audio_noise - audio).transpose(1, 2).flatten(2, 3)
        loss = F.mse_loss(video_pred, video_target) + F.mse_loss(audio_pred, audio_target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss.item()
        return self.clock() - started


def interleaved_times(folder: Path, model_folder: Path, name: str, steps: int, clock) -> dict[str, list[float]]:
    """Train with configuration `name`, one bare step before each trainer step; the seconds of both,
    after the warm-up (a trainer step runs from its hook_train_loop to the next step's bare step)."""
    settings = CONFIGS[name]
    trainer = tiny_trainer(
        REPO_ROOT, folder, steps, settings["logging"], settings["verbose"], f"bench_{name}",
        model_settings={"name_or_path": str(model_folder)},
    )
    from toolkit.trace import reset_tracer

    times: dict[str, list[float]] = {"trainer": [], "bare": []}
    state: dict = {"bare": None, "mark": None}
    original = trainer.hook_train_loop

    def interleaved(step: int):
        now = clock()
        if state["mark"] is not None:
            times["trainer"].append(now - state["mark"])
        if state["bare"] is None:
            state["bare"] = BareLoop(model_folder, trainer, clock)
        times["bare"].append(state["bare"].step(step))
        state["mark"] = clock()
        return original(step)

    trainer.hook_train_loop = interleaved
    try:
        trainer.run()
    finally:
        reset_tracer()
    return {kind: found[WARM_UP_STEPS:] for kind, found in times.items()}


def run_worker(name: str, model_folder: Path, steps: int, clock_name: str) -> dict[str, list[float]]:
    """One configuration in a fresh process (the trace, the logger and the allocator start clean)."""
    command = [sys.executable, __file__, "--worker", name, "--model", str(model_folder), "--steps", str(steps)]
    command += ["--clock", clock_name]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: dict[str, list[dict[str, list[float]]]]) -> dict[str, dict[str, float]]:
    """Per configuration: medians of the step times over all its runs, and the median over runs of each
    run's own ratio (trainer / bare, medians and means)."""
    summary = {}
    for name, found in runs.items():
        trainer = [t for run in found for t in run["trainer"]]
        bare = [t for run in found for t in run["bare"]]
        summary[name] = {
            "trainer_ms": statistics.median(trainer) * 1000,
            "bare_ms": statistics.median(bare) * 1000,
            "ratio": statistics.median(statistics.median(r["trainer"]) / statistics.median(r["bare"]) for r in found),
            "mean_ratio": statistics.median(statistics.fmean(r["trainer"]) / statistics.fmean(r["bare"]) for r in found),
        }
    return summary


def table(summary: dict[str, dict[str, float]]) -> str:
    rows = [
        (name, f"{row['trainer_ms']:.2f} ms", f"{row['bare_ms']:.2f} ms", f"{row['ratio']:.3f}x", f"{row['mean_ratio']:.3f}x")
        for name, row in summary.items()
    ]
    return markdown_table(("configuration", "trainer step (median)", "bare step (median)", "ratio (median)", "ratio (mean)"), rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=8, help="transformer blocks of the small LTX-2")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall seconds (the goal) or process CPU seconds")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when 'everything' is above {CHECK_LIMIT}x")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--worker", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps <= WARM_UP_STEPS + 1:
        raise SystemExit(f"--steps must be more than {WARM_UP_STEPS + 1} (the warm-up and one timed step)")
    if args.worker:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(interleaved_times(Path(folder), args.model, args.worker, args.steps, CLOCKS[args.clock])))
        return

    load_before = load_average()
    runs: dict[str, list[dict[str, list[float]]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        model_folder = small_ltx2(Path(folder), args.layers)
        for repeat in range(args.repeats):
            for name in list(CONFIGS) if repeat % 2 == 0 else reversed(CONFIGS):
                runs[name].append(run_worker(name, model_folder, args.steps, args.clock))
    summary = summarise(runs)
    setting = (
        f"LTX-2 of the tiny widths with {args.layers} transformer blocks, {args.steps} steps x {args.repeats} runs "
        f"per configuration (first {WARM_UP_STEPS} dropped), {args.clock} clock, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}"
    )
    print(f"\n{setting}; {machine(load_before)}\n{table(summary)}\n")
    for name, row in summary.items():
        print(f"ratio {name} {row['ratio']:.3f}")
    if args.write_doc:
        what = (
            f"{setting}. Each configuration trains in a fresh process; every trainer step (`hook_train_loop` with "
            "its callbacks, the progress bar and its metrics, the save and sample checks) is preceded by one step of "
            "a bare diffusers + peft loop on the trainer's own latents (same transformer, a peft LoRA on the same "
            "targets, AdamW, clipping), so both are timed interleaved. The ratio is trainer step / bare step "
            "(median over runs of each run's medians); the mean carries the steps that inspect. Configurations: "
            "`off` (TensorBoard, trace and inspection off), `verbose` (the trace), `tensorboard` (the defaults), "
            "`everything` (TensorBoard every step, diagnostics and inspection every 10 steps, the trace). "
            f"Goal: `everything` at most {CHECK_LIMIT:.2f}x (`--check`)."
        )
        title = "Observability per training step" + ("" if args.clock == "wall" else f", {args.clock} clock")
        body = report(title, command_line(__file__), what, [table(summary)], load_before)
        section = "trainer_overhead" if args.clock == "wall" else f"trainer_overhead.{args.clock}"
        print(f"wrote {write_section(section, body)}")
    if args.check and summary["everything"]["ratio"] > CHECK_LIMIT:
        print(f"check failed: everything is {summary['everything']['ratio']:.3f}x a bare step (limit {CHECK_LIMIT:.2f}x)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
