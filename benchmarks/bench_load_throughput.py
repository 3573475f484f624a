"""Streamed loading against the disk's own speed, on LTX-2 transformer blocks at the published widths.

    python benchmarks/bench_load_throughput.py                       # 5 blocks: 4.5 GB of bf16 shards
    python benchmarks/bench_load_throughput.py --repeats 5 --check   # exit 1 below 0.8x the raw read, cold
    python benchmarks/bench_load_throughput.py --folder /data/slice --keep   # build once, reuse
    python benchmarks/bench_load_throughput.py --write-doc           # the table into docs/benchmarks.md

Writes a sharded bf16 checkpoint of a transformer slice (benchmarks/memory_slice.py's
`build_slice`), then measures, interleaved and repeated:

- raw read: the shards read start to end in 16 MiB chunks (what the disk gives a plain reader);
- load bf16 / load qfloat8: the transformer loaded the way a training run loads it
  (LTX2Model's `loading.load_one`, streamed block by block, quantized with `quantize: true`),
  each in a fresh process so that nothing of one run stays for the next;

each "cold" (the shards' pages dropped from the page cache first: fsync, then
`posix_fadvise(POSIX_FADV_DONTNEED)` on each file) and "warm" (the shards read once just before).
Prints medians and, last, `ratio` lines: load throughput / raw read throughput for the same cache state,
each the median over the repeats of the load against the raw read measured just before it (on a
busy machine the disk's speed drifts between repeats; a pair shares it).
`--check` exits 1 when the cold bf16 ratio is below 0.8.

The checkpoint is deleted at the end unless `--keep`; a `--folder` that already holds a slice of the
same number of blocks is reused as it is (and left there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from benchmarks.memory_slice import PUBLISHED, REPO_ROOT, Scenario, ensure_slice, remove_slice  # noqa: E402

CHECK_RATIO = 0.8
READ_CHUNK = 16 * 1024**2
LOADS = {"load bf16": None, "load qfloat8": "qfloat8"}
CACHE_STATES = ("cold", "warm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5, help="transformer blocks (5: 4.5 GB; published: 48)")
    parser.add_argument("--shard-mb", type=int, default=1000, help="largest safetensors shard, in MB")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each row (the median is printed)")
    parser.add_argument("--folder", type=Path, help="where the checkpoint is written (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint for the next run")
    parser.add_argument("--no-quantized", action="store_true", help="skip the qfloat8 load (the slowest row)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the cold bf16 ratio is below {CHECK_RATIO}")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--measure-load", nargs=2, metavar=("FOLDER", "QTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_load:
        folder, qtype = args.measure_load
        print(json.dumps(measure_load(Path(folder), None if qtype == "none" else qtype)))
        return 0

    load_before = load_average()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="ltx2_load_"))
    built = False
    try:
        started = time.perf_counter()
        built = ensure_slice(replace(PUBLISHED, layers=args.layers), folder, args.shard_mb * 1000**2)
        if built:
            print(f"built the checkpoint in {time.perf_counter() - started:.0f} s")
        files = sorted((folder / "transformer").glob("*.safetensors"))
        size = sum(path.stat().st_size for path in files)
        print(f"checkpoint: {args.layers} published-width blocks, {len(files)} bf16 shards, {size / 1e9:.2f} GB in {folder}")
        loads = {name: qtype for name, qtype in LOADS.items() if not (args.no_quantized and qtype)}
        seconds = measure_all(folder, files, loads, args.repeats)
    finally:
        if not args.keep and (built or args.folder is None):
            remove_slice(folder)
    table, ratios = results(seconds, size)
    print(f"\n{table}\n")
    for (row, cache), ratio in ratios.items():
        print(f"ratio {row} {cache}: {ratio:.2f} (load throughput / raw read throughput, median of {args.repeats} paired runs)")
    print(machine(load_before))
    if args.write_doc:
        body = report("Load throughput", command_line(__file__, argv), described(args, len(files), size), [table], load_before)
        print(f"wrote {write_section('load_throughput', body)}")
    cold = ratios["load bf16", "cold"]
    if args.check and not cold >= CHECK_RATIO:
        print(f"check failed: cold bf16 load at {cold:.2f}x the raw read, below {CHECK_RATIO}", file=sys.stderr)
        return 1
    return 0


def described(args: argparse.Namespace, shards: int, size: int) -> str:
    """What the section measures and against which baseline (docs/benchmarks.md)."""
    return (
        f"A sharded bf16 checkpoint of {args.layers} LTX-2 transformer blocks at the published widths "
        f"({shards} shards, {size / 1e9:.2f} GB), then, interleaved and repeated {args.repeats} times: a raw read "
        "(the shards start to end in 16 MiB `readinto` one reused buffer: what the disk gives a plain reader) and "
        "the transformer loaded as a training run loads it (`loading.load_one`, streamed block by block; qfloat8 "
        "with `quantize: true`), each load in a fresh process. Cold: the shards' pages dropped first (`fsync`, then "
        "`posix_fadvise(POSIX_FADV_DONTNEED)`); warm: read once just before. The ratio is load throughput / raw "
        "read throughput in the same cache state, each load paired with the raw read just before it (median of "
        f"the pairs). `--check` fails below {CHECK_RATIO} for the cold bf16 load."
    )


def measure_all(folder: Path, files: list[Path], loads: dict[str, str | None], repeats: int) -> dict:
    """{(row, cache state): [seconds, ...]}: each repeat measures every row cold, then every row warm."""
    seconds: dict[tuple[str, str], list[float]] = {}
    for repeat in range(repeats):
        for cache in CACHE_STATES:
            for row in ("raw read", *loads):
                if cache == "cold":
                    drop_page_cache(files)
                else:
                    read_files(files)
                if row == "raw read":
                    taken = read_files(files)
                else:
                    taken = load_in_child(folder, loads[row])["seconds"]
                seconds.setdefault((row, cache), []).append(taken)
                print(f"  repeat {repeat + 1}/{repeats} {cache:4} {row:13} {taken:7.2f} s", flush=True)
    return seconds


def drop_page_cache(files: list[Path]) -> None:
    """Evict the files' pages from the page cache (no root needed), so the next read comes from the disk."""
    for path in files:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # dirty pages are not dropped
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def read_files(files: list[Path]) -> float:
    """Seconds to read the files start to end into one reused buffer."""
    view = memoryview(bytearray(READ_CHUNK))
    started = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(view):
                pass
    return time.perf_counter() - started


def load_in_child(folder: Path, qtype: str | None) -> dict:
    """`measure_load` in a fresh process (its imports are not timed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure-load", str(folder), qtype or "none"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"loading the transformer ({qtype or 'bf16'}) failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_load(folder: Path, qtype: str | None) -> dict:
    """Runs in the child: the transformer loaded as training loads it; seconds, and the RSS it added at its peak."""
    import resource

    import psutil

    from benchmarks.memory_slice import import_what_loading_imports, slice_model
    from extensions_built_in.diffusion_models.ltx2 import loading

    model = slice_model(folder, Scenario("load", qtype=qtype), "cpu")
    import_what_loading_imports()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    transformer = loading.load_one(model, "transformer")
    taken = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    parameters = sum(parameter.numel() for parameter in transformer.parameters())
    return {"seconds": taken, "peak_rss_added": peak - before, "parameters": parameters}


def results(seconds: dict, size: int) -> tuple[str, dict[tuple[str, str], float]]:
    """The table of medians with each load's ratio, and those ratios by (load, cache state)."""
    ratios = {}
    for row, cache in seconds:
        if row != "raw read":
            # Each load against the raw read of the same repeat (measured just before it), then the median.
            paired = [raw / load for raw, load in zip(seconds["raw read", cache], seconds[row, cache])]
            ratios[row, cache] = statistics.median(paired)
    rows = []
    for (row, cache), values in seconds.items():
        median = statistics.median(values)
        ratio = "1" if row == "raw read" else f"{ratios[row, cache]:.2f}"
        runs = " ".join(f"{value:.2f}" for value in values)
        rows.append((row, cache, f"{median:.2f}", f"{size / median / 1e9:.2f}", ratio, runs))
    return markdown_table(("row", "cache", "median s", "GB/s", "ratio to raw read", "runs (s)"), rows), ratios

if __name__ == "__main__":
    sys.exit(main())
