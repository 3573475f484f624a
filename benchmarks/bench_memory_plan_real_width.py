"""The memory plan against memory actually used, on LTX-2 transformer blocks at the published widths.

    python benchmarks/bench_memory_plan_real_width.py                    # CPU: host RAM only
    python benchmarks/bench_memory_plan_real_width.py --device cuda      # host RAM and CUDA peaks
    python benchmarks/bench_memory_plan_real_width.py --layers 4 --rank 32

Builds an LTX2VideoTransformer3DModel slice (video 32 heads x 128, audio 32 x 64,
cross-attention 4096, the real feed-forward; `--layers` blocks instead of 48),
saves it as sharded bf16 safetensors, then for each way of loading it (bf16;
qfloat8; qfloat8 with half the layers offloaded) loads it in a fresh process
through LTX2Model's loader (streamed block by block), attaches the LoRA,
attaches offloading and runs one AdamW step, sampling memory all along
(benchmarks/memory_slice.py). Prints, per phase, the plan's bytes, the measured
bytes and their ratio; `--check` exits 1 when a ratio is off by more than 10 %.

Host bytes are anonymous RSS above the process's baseline (file-backed pages,
such as those of a memory-mapped file, are page cache, which the plan does not
count); "plain rss" shows RSS for comparison. On CUDA, device bytes are
`torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory_slice import PUBLISHED, SCENARIOS, Scenario, build_slice, measure, planned  # noqa: E402

TOLERANCE = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks in the slice (published: 48)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--shard-mb", type=int, default=1000, help="largest safetensors shard, in MB")
    parser.add_argument("--check", action="store_true", help="exit 1 when a phase is off by more than 10 %%")
    args = parser.parse_args(argv)

    shape = PUBLISHED.__class__(**{**PUBLISHED.__dict__, "layers": args.layers})
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory(prefix="ltx2_slice_") as tmp:
        folder = Path(tmp) / "slice"
        folder.mkdir()
        build_slice(shape, folder, args.shard_mb * 1000**2)
        files = sorted((folder / "transformer").glob("*.safetensors"))
        print(f"slice: {args.layers} blocks at the published widths, {len(files)} bf16 shards, "
              f"{sum(f.stat().st_size for f in files) / 1024**3:.2f} GiB; device {args.device}")
        for scenario in SCENARIOS:
            scenario = Scenario(scenario.name, scenario.qtype, scenario.offload_percent, args.rank)
            plan, measured = planned(folder, scenario, args.device), measure(folder, scenario, args.device)
            for phase, planned_bytes in plan.items():
                if phase not in measured:  # sampling: benchmarks/gpu_check.py measures it
                    continue
                ratio = measured[phase] / planned_bytes if planned_bytes else float("nan")
                worst = max(worst, abs(ratio - 1))
                rss = measured.get(f"{phase} rss")
                rows.append((scenario.name, phase, planned_bytes, measured[phase], ratio, rss))
    _print_table(rows)
    print(f"\nlargest difference: {worst:.1%} (tolerance {TOLERANCE:.0%})")
    return 1 if args.check and worst > TOLERANCE else 0


def _print_table(rows) -> None:
    header = ("loading", "phase", "planned", "measured", "ratio", "plain rss")
    lines = [header] + [
        (name, phase, _gib(plan), _gib(got), f"{ratio:.3f}", "" if rss is None else _gib(rss))
        for name, phase, plan, got, ratio, rss in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _gib(size: int) -> str:
    return f"{size / 1024**3:.3f} GiB"


if __name__ == "__main__":
    sys.exit(main())
