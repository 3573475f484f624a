"""LogManager: the one place per process that owns handlers, metrics and sinks."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from toolkit.distributed import is_main_process, rank_tag
from toolkit.logging.config import LogConfig, level_number
from toolkit.logging.core import UnifiedLogger
from toolkit.logging.formatters import ROOT_LOGGER_NAME
from toolkit.logging.handlers import console_handler, rotating_file_handler
from toolkit.logging.metrics import MetricsTracker
from toolkit.logging.sinks import (
    METRICS_FILENAME,
    JsonlMetricsSink,
    MetricsSink,
    SinkSet,
    TensorBoardSink,
    open_wandb_sink,
)
from toolkit.logging.sinks.background import BackgroundWriter

WARNINGS_LOGGER_NAME = "py.warnings"


class LogManager:
    """Process-wide logging state: one instance per process (``get_instance()``).

    Handlers sit on the project root logger ``ltx2_trace``; every logger from
    ``get_logger`` is its child, so loggers taken before configuration get the
    handlers once they exist. Only the main process gets the file handler and
    the metrics sinks; other ranks print WARNING and above to the console.
    The sinks write on one background thread (``BackgroundWriter``), in the
    order the values were logged; ``flush``, ``cleanup`` and the end of the
    interpreter wait for it. All methods are thread safe.
    """

    _instance: LogManager | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._config = LogConfig()
        self._configured = False
        self._is_main = True
        self._installed: list[tuple[logging.Logger, logging.Handler]] = []
        self._loggers: dict[str, UnifiedLogger] = {}
        warnings_to = logging.getLogger(f"{ROOT_LOGGER_NAME}.logging")
        self._background = BackgroundWriter(warnings_to)
        self._sinks = SinkSet(warnings_to=warnings_to, background=self._background)
        self._metrics = MetricsTracker(self._config.metrics_window)
        self._tensorboard = TensorBoardSink.disabled()
        self._last_step = -1

    @classmethod
    def get_instance(cls) -> LogManager:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def config(self) -> LogConfig:
        return self._config

    @property
    def is_configured(self) -> bool:
        return self._configured

    @property
    def is_main_process(self) -> bool:
        return self._is_main

    @property
    def metrics(self) -> MetricsTracker:
        return self._metrics

    @property
    def sink_names(self) -> list[str]:
        return self._sinks.names

    @property
    def tensorboard(self) -> TensorBoardSink:
        """The process's TensorBoard writer; a disabled one (writes nothing) when there is none."""
        return self._tensorboard

    def configure_from_config(self, config: LogConfig) -> UnifiedLogger:
        """Install handlers and sinks for ``config`` and return the logger named ``config.name``.

        Calling it again with an equal config returns that logger unchanged; a
        different config first closes what the previous one opened.
        """
        with self._lock:
            if self._configured and config == self._config:
                return self._process_logger(config.name)
            if self._configured:
                self.cleanup()
            self._config = config
            self._is_main = is_main_process() if config.is_main_process is None else config.is_main_process
            self._metrics = MetricsTracker(config.metrics_window, config.metrics_history, config.metrics_history_max)
            self._last_step = -1
            self._install_handlers(config)
            self._configured = True
            if self._is_main and config.tensorboard_path is not None:
                self._tensorboard = TensorBoardSink(config.tensorboard_path, config.tensorboard_flush_every)
            if self._is_main and config.enable_metrics:
                self._open_sinks(config)
            # A run that fails or is interrupted still writes what it logged (the writer thread is a daemon).
            atexit.register(self.flush)
            return self._process_logger(config.name)

    def ensure_configured(self, name: str) -> UnifiedLogger:
        """The logger ``name``; configures the process with defaults if nothing has yet."""
        with self._lock:
            if self._configured:
                return self.get_logger(name)
            return self.configure_from_config(LogConfig(name=name))

    def get_logger(self, name: str) -> UnifiedLogger:
        """The logger ``name`` (under the project root), created on first use."""
        full_name = _under_root(name)
        with self._lock:
            unified = self._loggers.get(full_name)
            if unified is None:
                unified = UnifiedLogger(logging.getLogger(full_name), self)
                self._loggers[full_name] = unified
            return unified

    def add_sink(self, sink: MetricsSink) -> None:
        """Send metrics to ``sink`` as well (main process only); it is closed on cleanup."""
        if self._is_main:
            self._sinks.add(sink)

    def record_metrics(self, metrics: Mapping[str, Any], step: int | None) -> dict[str, float]:
        if not self._config.enable_metrics:
            return {}
        with self._lock:
            step = self._last_step + 1 if step is None else step
            self._last_step = step
        values = self._metrics.update(metrics, step)
        prefix = self._config.metrics_prefix
        self._sinks.log({f"{prefix}{name}": value for name, value in values.items()}, step)
        return values

    def flush(self) -> None:
        with self._lock:
            self._sinks.flush()
            for _, handler in self._installed:
                handler.flush()

    def cleanup(self) -> None:
        """Close progress bars, sinks (TensorBoard included) and handlers; loggers stay usable
        and fall back to Python's default handling until the next configuration."""
        with self._lock:
            atexit.unregister(self.flush)
            for unified in self._loggers.values():
                unified.close_progress()
            self._sinks.close()
            self._tensorboard.close()
            self._tensorboard = TensorBoardSink.disabled()
            self._background.stop()
            for std_logger, handler in self._installed:
                std_logger.removeHandler(handler)
                handler.close()
            self._installed = []
            if self._config.capture_warnings:
                logging.captureWarnings(False)
            self._configured = False

    def __enter__(self) -> LogManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.cleanup()

    def _process_logger(self, name: str) -> UnifiedLogger:
        full_name = _under_root(name)
        unified = self._loggers.get(full_name)
        if unified is None or not unified._owns_process:
            unified = UnifiedLogger(logging.getLogger(full_name), self, owns_process=True)
            self._loggers[full_name] = unified
        return unified

    def _install_handlers(self, config: LogConfig) -> None:
        handlers: list[logging.Handler] = []
        if config.enable_console:
            console_level = level_number(config.console_level)
            if not self._is_main:
                console_level = max(console_level, logging.WARNING)
            handlers.append(console_handler(console_level, rank_tag="" if self._is_main else rank_tag()))
        if self._is_main and config.log_path is not None:
            handlers.append(
                rotating_file_handler(
                    config.log_path, level_number(config.file_level), config.max_file_bytes, config.backup_count
                )
            )
        root = logging.getLogger(ROOT_LOGGER_NAME)
        root.setLevel(min((handler.level for handler in handlers), default=logging.WARNING))
        root.propagate = config.propagate
        targets = [root]
        if config.capture_warnings:
            logging.captureWarnings(True)
            targets.append(logging.getLogger(WARNINGS_LOGGER_NAME))
        for target in targets:
            for handler in handlers:
                target.addHandler(handler)
                self._installed.append((target, handler))

    def _open_sinks(self, config: LogConfig) -> None:
        if config.log_dir is not None:
            self._sinks.add(JsonlMetricsSink(config.log_dir / METRICS_FILENAME))
        if self._tensorboard.enabled:
            self._sinks.add(self._tensorboard)
        if config.enable_wandb:
            sink = open_wandb_sink(
                project=config.wandb_project or config.name,
                run_name=config.wandb_name,
                tags=config.wandb_tags,
                run_dir=None if config.log_dir is None else str(config.log_dir),
                warnings_to=logging.getLogger(f"{ROOT_LOGGER_NAME}.logging"),
            )
            if sink is not None:
                self._sinks.add(sink)


def setup_logging(config: LogConfig | str | None = None, module_name: str | None = None) -> UnifiedLogger:
    """Set up this process's logging once and return its logger.

    A ``LogConfig`` (re)configures the process; a name (``config`` as a string, or
    ``module_name`` as in seed 002's ``setup_logging(module_name="my_module")``) only
    configures it with defaults the first time, afterwards it returns the logger of
    that name.
    """
    if isinstance(config, LogConfig) and module_name is not None:
        raise TypeError("setup_logging: give a LogConfig or a module_name, not both (the LogConfig's name is used)")
    manager = LogManager.get_instance()
    if isinstance(config, LogConfig):
        return manager.configure_from_config(config)
    name = module_name if module_name is not None else config
    return manager.ensure_configured(name if name is not None else LogConfig().name)


def get_logger(name: str) -> UnifiedLogger:
    """The logger ``name`` of this process (use ``get_logger(__name__)`` in modules)."""
    return LogManager.get_instance().get_logger(name)


def _under_root(name: str) -> str:
    if name == ROOT_LOGGER_NAME or name.startswith(ROOT_LOGGER_NAME + "."):
        return name
    return f"{ROOT_LOGGER_NAME}.{name}"

