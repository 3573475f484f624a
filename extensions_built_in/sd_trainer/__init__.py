"""Registers the `sd_trainer` process: LoRA training (code in SDTrainer.py, imported only when a job runs)."""

from __future__ import annotations

from toolkit.extensions import register_process

from .config import TrainProcessConfig

register_process("sd_trainer", TrainProcessConfig, "extensions_built_in.sd_trainer.SDTrainer:SDTrainer")
