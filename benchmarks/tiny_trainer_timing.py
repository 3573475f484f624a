"""Shared by the benchmarks: run the tiny example's trainer and time each `hook_train_loop`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

WARM_UP_STEPS = 5


def tiny_config(
    repo: Path,
    folder: Path,
    steps: int,
    logging_settings: dict,
    verbose: bool = False,
    name: str = "bench",
    model_settings: dict | None = None,
    cache_latents: bool = False,
) -> Path:
    """The tiny example's config, written under `folder` to train `steps` steps (sampling off, no saves but
    the final one, the latent cache on disk only with `cache_latents`, TensorBoard off unless
    `logging_settings` turns it on; `model_settings` override the `model:` block, e.g. another `name_or_path`)."""
    import yaml  # here, so that a benchmark can time the run's imports, yaml among them

    raw = yaml.safe_load((repo / "config/examples/train_lora_ltx2_tiny.yaml").read_text())
    raw["config"]["name"] = name
    process = raw["config"]["process"][0]
    process["training_folder"] = str(folder)
    process["datasets"][0].update(folder_path=str(repo / "data/demo_clips"), cache_latents_to_disk=cache_latents)
    process["train"].update({"steps": steps, "disable_sampling": True})
    process["save"]["save_every"] = steps * 10
    process["model"].update({"verbose": verbose, **(model_settings or {})})
    process["logging"] = {**process.get("logging", {}), "use_tensorboard": False, "progress_bar": False, **logging_settings}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def use_tree(repo: Path) -> None:
    """Import the project from the tree at `repo` (not another checkout on the path)."""
    sys.path.insert(0, str(repo))
    import toolkit

    if not Path(toolkit.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"imported {toolkit.__file__}, not the tree under {repo}")
    try:
        from toolkit.deferred_packages import defer
    except ImportError:  # an older tree (bench_inspection's "before") has nothing to defer
        return
    defer()  # as run.py does first: bitsandbytes waits for the optimizer that uses it


def tiny_trainer(
    repo: Path,
    folder: Path,
    steps: int,
    logging_settings: dict,
    verbose: bool = False,
    name: str = "bench",
    model_settings: dict | None = None,
):
    """The trainer of `tiny_config` (same arguments), from the tree at `repo`; not run yet."""
    use_tree(repo)
    from toolkit.config import load_config
    from toolkit.job import Job

    path = tiny_config(repo, folder, steps, logging_settings, verbose, name, model_settings)
    return Job(load_config(path), path).processes[0]


def hook_step_times(
    repo: Path,
    folder: Path,
    steps: int,
    logging_settings: dict,
    verbose: bool = False,
    name: str = "bench",
) -> list[float]:
    """Train the tiny example (see `tiny_trainer`) for `steps` steps; the seconds of each step after the first
    WARM_UP_STEPS (callbacks included; loading, caching and saving excluded)."""
    trainer = tiny_trainer(repo, folder, steps, logging_settings, verbose, name)
    from toolkit.trace import reset_tracer
    times: list[float] = []
    original = trainer.hook_train_loop

    def timed(step: int):
        started = time.perf_counter()
        result = original(step)
        times.append(time.perf_counter() - started)
        return result

    trainer.hook_train_loop = timed
    try:
        trainer.run()
    finally:
        reset_tracer()
    return times[WARM_UP_STEPS:]
