"""Weights & Biases, optional: used when the package is installed and enable_wandb is set."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from toolkit.logging.sinks.base import MetricsSink

WANDB_HOST = ("api.wandb.ai", 443)


def wandb_api_reachable(timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to the W&B API opens; False offline or behind a firewall."""
    try:
        with socket.create_connection(WANDB_HOST, timeout=timeout_s):
            return True
    except OSError:
        return False


class WandbSink(MetricsSink):
    """Logs metrics to a W&B run (online, or offline files under log_dir to `wandb sync` later)."""

    name = "W&B run"

    def __init__(self, run: Any) -> None:
        self.run = run

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def flush(self) -> None:
        # A W&B run streams in its own process; there is nothing buffered here.
        return None

    def close(self) -> None:
        self.run.finish()


def open_wandb_sink(
    *,
    project: str,
    run_name: str | None,
    tags: list[str],
    run_dir: str | None,
    warnings_to: logging.Logger,
    network_reachable: Callable[[], bool] = wandb_api_reachable,
) -> WandbSink | None:
    """Start a W&B run, or warn and return None when wandb is not installed.

    ``WANDB_MODE`` from the environment wins; without it the run is online when
    the API answers and offline otherwise, so a machine without network still
    keeps its run on disk.
    """
    try:
        import wandb
    except ImportError:
        warnings_to.warning(
            "W&B logging is on (enable_wandb / logging.use_wandb) but the wandb package is not installed; "
            "metrics still go to metrics.jsonl and TensorBoard. Install it with `pip install wandb`, "
            "or turn W&B off (logging.use_wandb: false)."
        )
        return None
    mode = os.environ.get("WANDB_MODE") or ("online" if network_reachable() else "offline")
    if mode == "offline":
        warnings_to.info("W&B runs offline; upload later with `wandb sync %s`.", run_dir or "wandb/")
    run = wandb.init(project=project, name=run_name, tags=tags, dir=run_dir, mode=mode)
    return WandbSink(run)
