"""Cost of a trace point with the trace off: a null span against a bare ``nullcontext``.

    python benchmarks/bench_null_span.py [--iterations 100000] [--repeats 3]

Each loop runs ``--repeats`` times and the fastest counts, so other work on the
machine inflates neither side. Prints both times and their ratio (about 1-3x is
what "costs nothing when off" means here). Not part of the tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from toolkit.trace import get_tracer  # noqa: E402


def time_null_spans(iterations: int) -> float:
    tracer = get_tracer()
    started = time.perf_counter()
    for step in range(iterations):
        with tracer.span("step", step=step):
            pass
    return time.perf_counter() - started


def time_nullcontexts(iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        with nullcontext():
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    null_span_s = min(time_null_spans(args.iterations) for _ in range(args.repeats))
    bare_s = min(time_nullcontexts(args.iterations) for _ in range(args.repeats))
    print(f"{args.iterations} iterations, best of {args.repeats}")
    print(f"  nullcontext (bare):  {bare_s * 1e9 / args.iterations:8.1f} ns each")
    print(f"  null tracer span:    {null_span_s * 1e9 / args.iterations:8.1f} ns each")
    print(f"  ratio null span / bare: {null_span_s / bare_s:.2f}x")


if __name__ == "__main__":
    main()
