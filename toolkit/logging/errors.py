"""Error type of the logging package."""

from __future__ import annotations


class LoggingError(Exception):
    """A logging setup problem the user can fix.

    The message says what went wrong, where (the setting or path), and what to
    change.
    """
