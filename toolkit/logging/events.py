"""One printer per event: a traced event is printed by the trace; the logger prints the rest.

An event both recorded in the trace and worth a console line (a clip's latent
encode, the caching report) goes through ``publish_event``: with the trace on,
the event (its summary line among its fields) goes to the trace, whose console
sink prints it as a ``[VERBOSE]`` line; the logger prints the summary only when
no trace console prints it (trace off, or a trace written to files only), and
otherwise records it at DEBUG, which reaches ``train.log`` (file level DEBUG)
but not the console (INFO unless ``logging.verbose``). So each event reaches
the screen once and the log file keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CONSOLE_SINK = "console"  # the name of the trace's stdout sink (toolkit.trace.sinks.console)


def trace_prints(tracer: Any) -> bool:
    """Whether ``tracer`` prints its records to the console."""
    return bool(tracer.enabled) and CONSOLE_SINK in getattr(tracer, "sink_names", ())


def publish_event(
    tracer: Any,
    logger: Any,
    name: str,
    summary: Callable[[], str],
    fields: Callable[[], dict[str, Any]],
    *,
    log_when_untraced: bool = True,
    warning: bool = False,
) -> None:
    """Record ``name`` in the trace and print its ``summary`` once.

    ``summary`` and ``fields`` are called only when something uses them, so an
    untraced, unlogged event costs nothing. ``log_when_untraced=False`` is for
    per-item detail (one line per clip) that is only shown while tracing.
    ``warning=True`` logs the summary as a warning where the logger prints it.
    """
    printed = logger.warning if warning else logger.info
    if tracer.enabled:
        text = summary()
        tracer.event(name, summary=text, **fields())
        # Printed by the trace: the logger keeps it for the log file only (DEBUG: below the console's INFO).
        record = logger.debug if trace_prints(tracer) else printed
        record("%s", text)
    elif log_when_untraced:
        printed("%s", summary())
