"""The memory plan against memory actually used, on LTX-2 transformer blocks at the published widths.

    python benchmarks/bench_memory_plan_real_width.py                    # CPU: host RAM only
    python benchmarks/bench_memory_plan_real_width.py --device cuda      # host RAM and CUDA peaks
    python benchmarks/bench_memory_plan_real_width.py --layers 4 --rank 32
    python benchmarks/bench_memory_plan_real_width.py --write-doc         # the table into docs/benchmarks.md

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

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from benchmarks.memory_slice import PUBLISHED, SCENARIOS, Scenario, build_slice, measure, planned  # noqa: E402

TOLERANCE = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks in the slice (published: 48)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--shard-mb", type=int, default=1000, help="largest safetensors shard, in MB")
    parser.add_argument("--check", action="store_true", help="exit 1 when a phase is off by more than 10 %%")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = load_average()

    shape = PUBLISHED.__class__(**{**PUBLISHED.__dict__, "layers": args.layers})
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory(prefix="ltx2_slice_") as tmp:
        folder = Path(tmp) / "slice"
        folder.mkdir()
        build_slice(shape, folder, args.shard_mb * 1000**2)
        files = sorted((folder / "transformer").glob("*.safetensors"))
        setting = (f"{args.layers} blocks at the published widths, {len(files)} bf16 shards, "
                   f"{sum(f.stat().st_size for f in files) / 1024**3:.2f} GiB; LoRA rank {args.rank}; device {args.device}")
        print(f"slice: {setting}")
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
    table = markdown_table(
        ("loading", "phase", "planned", "measured", "measured / planned", "plain rss"),
        [(name, phase, _gib(plan), _gib(got), f"{ratio:.3f}", "" if rss is None else _gib(rss))
         for name, phase, plan, got, ratio, rss in rows],
    )
    summary = f"largest difference: {worst:.1%} (tolerance {TOLERANCE:.0%})"
    print(f"\n{table}\n\n{summary}\n{machine(load_before)}")
    if args.write_doc:
        what = (
            f"An `LTX2VideoTransformer3DModel` slice: {setting}. For each way of loading it, a fresh process loads it "
            "through LTX2Model's loader (streamed block by block), attaches the LoRA and layer offloading and runs one "
            "AdamW step, sampling its memory all along. The ratio is measured / planned bytes (the memory plan, "
            "`toolkit/memory_management/plan*.py`, for the same folder and settings). Host bytes are anonymous RSS "
            "above the process's baseline (the page cache of the files is not counted, as the plan does not); "
            "plain rss counts file-backed and shared pages too; on the CPU the \"device\" is host RAM, so training "
            f"host is everything the step holds. `--check` fails beyond {TOLERANCE:.0%}. {summary}."
        )
        title = "Memory plan at the published widths" + ("" if args.device == "cpu" else f", {args.device}")
        body = report(title, command_line(__file__, argv), what, [table], load_before)
        section = "memory_plan_real_width" if args.device == "cpu" else f"memory_plan_real_width.{args.device}"
        print(f"wrote {write_section(section, body)}")
    return 1 if args.check and worst > TOLERANCE else 0


def _gib(size: int) -> str:
    return f"{size / 1024**3:.3f} GiB"

if __name__ == "__main__":
    sys.exit(main())
