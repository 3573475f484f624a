"""Cost of a trace point with the trace off: a null span against a bare ``nullcontext``.

    python benchmarks/bench_null_span.py [--iterations 100000] [--repeats 3] [--write-doc]

Each loop runs ``--repeats`` times and the fastest counts, so other work on the
machine inflates neither side. Prints both times and their ratio (about 1-3x is
what "costs nothing when off" means here). Not part of the tests. `--write-doc` puts the table into
docs/benchmarks.md (section `null_span`).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
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
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    null_span_s = min(time_null_spans(args.iterations) for _ in range(args.repeats))
    bare_s = min(time_nullcontexts(args.iterations) for _ in range(args.repeats))
    table = markdown_table(
        ("loop body", "ns each", "ratio to bare"),
        [
            ("`with nullcontext():` (bare)", f"{bare_s * 1e9 / args.iterations:.1f}", "1.00x"),
            ('`with tracer.span("step", step=step):`, trace off', f"{null_span_s * 1e9 / args.iterations:.1f}",
             f"{null_span_s / bare_s:.2f}x"),
        ],
    )
    print(f"{args.iterations} iterations, best of {args.repeats}; {machine(load_before)}\n{table}")
    if args.write_doc:
        what = (
            f"A trace point with the trace off (the null tracer's span, with one keyword) against a bare `nullcontext`, "
            f"{args.iterations} iterations of each loop, the fastest of {args.repeats} runs counting. The ratio is "
            "null span / bare: what \"costs nothing when off\" means for one trace point."
        )
        body = report("Trace point with the trace off", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('null_span', body)}")

if __name__ == "__main__":
    main()
