"""The console and file handlers the logger installs."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import IO

from tqdm import tqdm

from toolkit.logging.errors import LoggingError
from toolkit.logging.formatters import console_formatter, file_formatter


class ProgressAwareConsoleHandler(logging.StreamHandler):
    """A console handler that never writes into the middle of a progress bar.

    Each line goes through ``tqdm.write``, which takes tqdm's lock, clears the
    bars on the same stream, writes the whole line and redraws them. The
    handler's own lock (held by ``logging.Handler.handle``) keeps lines from
    different threads whole; tqdm's lock keeps them apart from bar refreshes.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's contract: report through handleError, never raise
            self.handleError(record)


def console_handler(level: int, rank_tag: str = "", stream: IO[str] | None = None) -> ProgressAwareConsoleHandler:
    """Console handler on ``stream`` (stderr by default, where tqdm draws its bars)."""
    stream = stream if stream is not None else sys.stderr
    handler = ProgressAwareConsoleHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(console_formatter(stream, rank_tag))
    return handler


def rotating_file_handler(
    path: Path, level: int, max_bytes: int, backup_count: int
) -> logging.handlers.RotatingFileHandler:
    """Append to ``path``; past ``max_bytes`` the file rolls over to ``path.1`` .. ``path.N``.

    ``max_bytes=0`` disables rotation.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    except OSError as error:
        raise LoggingError(
            f"Cannot open the log file {path}: {error.strerror or error}. "
            "Set logging to a writable folder (log_dir) or turn file logging off (enable_file=False)."
        ) from error
    handler.setLevel(level)
    handler.setFormatter(file_formatter())
    return handler
