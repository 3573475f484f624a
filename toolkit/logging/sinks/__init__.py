"""Destinations for logged metrics: metrics.jsonl, TensorBoard, W&B."""

from __future__ import annotations

from toolkit.logging.sinks.base import MetricsSink, SinkSet
from toolkit.logging.sinks.jsonl import METRICS_FILENAME, JsonlMetricsSink
from toolkit.logging.sinks.tensorboard import TensorBoardSink
from toolkit.logging.sinks.wandb import WandbSink, open_wandb_sink

__all__ = [
    "METRICS_FILENAME",
    "JsonlMetricsSink",
    "MetricsSink",
    "SinkSet",
    "TensorBoardSink",
    "WandbSink",
    "open_wandb_sink",
]
