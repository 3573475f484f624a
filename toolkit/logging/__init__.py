"""Unified logging: console and file text, a progress bar with throughput, metrics, memory.

    from toolkit.logging import LogConfig, setup_logging, get_logger

    logger = setup_logging(LogConfig.from_yaml_logging(process_config.logging, log_dir, name))
    logger.start_progress(total=steps, desc="training")
    logger.update_progress(1, batch_size=batch_size, loss=loss)
    logger.log_metrics({"loss": loss, "lr": lr}, step=step)
    logger.finish()

Separate from the [VERBOSE] tracer (``toolkit.trace``), which records phases
and tensors when ``model.verbose`` is on.
"""

from __future__ import annotations

from toolkit.logging.config import LogConfig
from toolkit.logging.core import UnifiedLogger
from toolkit.logging.errors import LoggingError
from toolkit.logging.manager import LogManager, get_logger, setup_logging
from toolkit.logging.progress import ACCUMULATED_SAMPLES, BATCH_TIME_MS, ETA_SEC, SAMPLES_PER_SEC

__all__ = [
    "ACCUMULATED_SAMPLES",
    "BATCH_TIME_MS",
    "ETA_SEC",
    "SAMPLES_PER_SEC",
    "LogConfig",
    "LogManager",
    "LoggingError",
    "UnifiedLogger",
    "get_logger",
    "setup_logging",
]
