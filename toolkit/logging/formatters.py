"""Line formats of the console and the log file.

Logger names are shown without the project root (``ltx2_trace.``) so a line
reads ``toolkit.data.dataset`` rather than the full internal name.
"""

from __future__ import annotations

import logging
import os
from typing import IO

ROOT_LOGGER_NAME = "ltx2_trace"

_LEVEL_COLORS = {
    logging.DEBUG: "\x1b[2m",  # dim
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET = "\x1b[0m"


def short_logger_name(name: str) -> str:
    """The logger name as users wrote it, without the project root prefix."""
    if name == ROOT_LOGGER_NAME:
        return name
    return name.removeprefix(ROOT_LOGGER_NAME + ".")


def wants_color(stream: IO[str]) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class LineFormatter(logging.Formatter):
    """``time LEVEL name: message``, with a ``[rank N]`` tag off the main process."""

    def __init__(self, *, datefmt: str, use_color: bool = False, rank_tag: str = "") -> None:
        super().__init__(datefmt=datefmt)
        self._use_color = use_color
        self._rank_tag = f"{rank_tag} " if rank_tag else ""

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self._use_color:
            level = f"{_LEVEL_COLORS.get(record.levelno, '')}{level}{_RESET}"
        line = (
            f"{self.formatTime(record, self.datefmt)} {self._rank_tag}{level} "
            f"{short_logger_name(record.name)}: {record.getMessage()}"
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def console_formatter(stream: IO[str], rank_tag: str = "") -> LineFormatter:
    return LineFormatter(datefmt="%H:%M:%S", use_color=wants_color(stream), rank_tag=rank_tag)


def file_formatter() -> LineFormatter:
    return LineFormatter(datefmt="%Y-%m-%d %H:%M:%S")
