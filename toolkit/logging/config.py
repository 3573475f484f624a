"""LogConfig: every setting of the unified logger, validated once.

The YAML's ``logging:`` block (``toolkit.config.LoggingConfig``, pydantic) is
the one source of the settings a user writes: ``LogConfig.from_yaml_logging``
derives the runtime config from it, and the defaults LogConfig shares with it
are read from that schema, so no default is written twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config.logging_config import LoggingConfig
from toolkit.logging.errors import LoggingError


def _schema_default(name: str) -> Any:
    """The default of the `logging:` block's field ``name``."""
    return LoggingConfig.model_fields[name].get_default(call_default_factory=True)


LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class LogConfig:
    """Settings of the unified logger of one process.

    Files (the text log, ``metrics.jsonl``, TensorBoard events, W&B's offline
    run) are written only when ``log_dir`` is set, and only by the main
    process. ``metrics_prefix`` is put in front of every metric name the sinks
    receive; averages and history are looked up by the name as logged.
    ``is_main_process=None`` asks ``toolkit.distributed`` (accelerate's state
    when initialised, else the ``RANK`` / ``LOCAL_RANK`` environment variables).
    """

    name: str = "ltx2_trace"
    log_dir: str | Path | None = None
    console_level: str = "INFO"
    file_level: str = "DEBUG"
    filename: str = _schema_default("log_file")

    enable_console: bool = True
    enable_file: bool = True
    enable_wandb: bool = _schema_default("use_wandb")
    enable_tensorboard: bool = False  # the YAML block turns it on (use_tensorboard); a bare setup_logging() writes no events
    enable_progress: bool = _schema_default("progress_bar")
    enable_metrics: bool = True
    enable_memory: bool = True
    capture_warnings: bool = True
    propagate: bool = False

    wandb_project: str | None = None
    wandb_name: str | None = None
    wandb_tags: list[str] = field(default_factory=list)

    tensorboard_dir: str | Path | None = None
    tensorboard_flush_every: int = _schema_default("flush_every")

    progress_window: int = 100
    progress_smoothing: float = 0.3
    progress_position: int = 0
    progress_leave: bool = True

    metrics_window: int = _schema_default("metrics_window")
    metrics_history: bool = True
    metrics_history_max: int = 10_000
    metrics_prefix: str = ""

    max_file_bytes: int = _schema_default("max_file_bytes")
    backup_count: int = _schema_default("backup_count")
    is_main_process: bool | None = None

    def __post_init__(self) -> None:
        self.console_level = _level_name(self.console_level, "console_level")
        self.file_level = _level_name(self.file_level, "file_level")
        if self.log_dir is not None:
            self.log_dir = Path(self.log_dir)
        if self.tensorboard_dir is not None:
            self.tensorboard_dir = Path(self.tensorboard_dir)
        self.wandb_tags = list(self.wandb_tags)
        _require(self.progress_window >= 1, "progress_window", self.progress_window, "an integer >= 1")
        _require(
            0.0 < self.progress_smoothing <= 1.0,
            "progress_smoothing",
            self.progress_smoothing,
            "a number in (0, 1]: the weight of the newest step in the samples/sec average",
        )
        _require(
            self.tensorboard_flush_every >= 1, "tensorboard_flush_every", self.tensorboard_flush_every, "an integer >= 1"
        )
        _require(self.metrics_window >= 1, "metrics_window", self.metrics_window, "an integer >= 1")
        _require(
            self.metrics_history_max >= 1, "metrics_history_max", self.metrics_history_max, "an integer >= 1"
        )
        _require(self.max_file_bytes >= 0, "max_file_bytes", self.max_file_bytes, "0 (no rotation) or more")
        _require(
            self.max_file_bytes == 0 or self.backup_count >= 1,
            "backup_count",
            self.backup_count,
            "at least 1 when max_file_bytes is set, otherwise the log file never rotates",
        )

    @property
    def log_path(self) -> Path | None:
        """Where the text log goes; None when no file is written."""
        if self.log_dir is None or not self.enable_file:
            return None
        return Path(self.log_dir) / self.filename

    @property
    def tensorboard_path(self) -> Path | None:
        """Where TensorBoard events go: ``tensorboard_dir`` or ``<log_dir>/tensorboard``."""
        if not self.enable_tensorboard:
            return None
        if self.tensorboard_dir is not None:
            return Path(self.tensorboard_dir)
        if self.log_dir is None:
            return None
        return Path(self.log_dir) / "tensorboard"

    @classmethod
    def from_yaml_logging(cls, logging_block: Any, log_dir: str | Path, name: str) -> LogConfig:
        """Derive the runtime config from the YAML's ``logging`` block (a validated schema object).

        ``verbose: true`` lowers the console to DEBUG; it is the ordinary
        logger's level and has nothing to do with the [VERBOSE] tracer
        (``model.verbose``). A block that lacks a field (a generate process's
        block has no metrics) gets the training block's default; ``None``
        means every default.
        """
        block = logging_block if logging_block is not None else LoggingConfig()

        def read(field_name: str) -> Any:
            return getattr(block, field_name, _schema_default(field_name))

        return cls(
            name=name,
            log_dir=log_dir,
            console_level="DEBUG" if read("verbose") else "INFO",
            filename=read("log_file"),
            enable_tensorboard=read("use_tensorboard"),
            tensorboard_flush_every=read("flush_every"),
            enable_wandb=read("use_wandb"),
            wandb_project=read("wandb_project"),
            wandb_name=read("wandb_name"),
            wandb_tags=list(read("wandb_tags")),
            enable_progress=read("progress_bar"),
            metrics_window=read("metrics_window"),
            max_file_bytes=read("max_file_bytes"),
            backup_count=read("backup_count"),
        )


def level_number(level_name: str) -> int:
    """The numeric level of a validated level name."""
    return logging.getLevelName(level_name)


def _level_name(value: str | int, setting: str) -> str:
    if isinstance(value, int) and logging.getLevelName(value) in LEVEL_NAMES:
        return logging.getLevelName(value)
    name = str(value).upper()
    if name not in LEVEL_NAMES:
        raise LoggingError(
            f"LogConfig.{setting} is {value!r}, which is not a log level; use one of {', '.join(LEVEL_NAMES)}."
        )
    return name


def _require(ok: bool, setting: str, value: Any, expected: str) -> None:
    if not ok:
        raise LoggingError(f"LogConfig.{setting} is {value!r}; it must be {expected}.")
