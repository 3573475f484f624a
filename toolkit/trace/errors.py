"""Error and warning types of the verbose layer."""

from __future__ import annotations


class TraceConfigError(ValueError):
    """A verbose-trace setting is out of range; the message names the setting and a valid value."""


class TraceSinkWarning(RuntimeWarning):
    """A trace sink failed and was dropped; tracing goes on with the other sinks.

    A warning, not an error: the verbose layer must never stop the run it observes.
    Filter it with ``warnings.simplefilter("error", TraceSinkWarning)`` to make it fatal.
    """
