"""One command for a CUDA machine: the trainer's real paths on published-width LTX-2 slices, against the plan.

    python benchmarks/gpu_check.py                        # CUDA: 2 published-width blocks, qfloat8, 30 % offloaded
    python benchmarks/gpu_check.py --write-doc            # and put the tables in docs/benchmarks.md (one section per device)
    python benchmarks/gpu_check.py --device cpu --quick   # the same code paths on the CPU, tiny widths (the suite runs it)

Builds a transformer slice (benchmarks/memory_slice.py) and runs, in this process, as the 24 GB example
trains: the streamed load onto the device with quantization and layer offloading, the LoRA, optimizer
steps with bitsandbytes' 8-bit AdamW and with torch AdamW, and sampling (benchmarks/gpu_check_steps.py).
Prints, per phase, the memory plan's host and CUDA bytes (toolkit/memory_management/plan*.py) against
the measured peaks, then the median step time of each optimizer against a bare diffusers + peft loop on
the same slice, and last `ratio` lines. Without bitsandbytes the 8-bit rows say so and are skipped; if
8-bit AdamW raises on this machine, the check goes on, prints `FAILED` with the error and exits 1.
The step times are taken one configuration after the other, not interleaved: run it on an idle machine.

Host bytes are anonymous RSS above the baseline taken before loading (the CUDA context is in the
baseline); `plain rss` also counts file-backed and shared pages, where CUDA's pinned host buffers (the
offloaded layers) may show. CUDA bytes are `torch.cuda.max_memory_allocated`, its peak reset per phase.
The plan counts AdamW's state as two fp32 copies of the LoRA; 8-bit AdamW keeps about a quarter of that,
so its training row is expected below 1. The plan leaves activations out: the batch is small.
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import gpu_check_steps as steps  # noqa: E402
from benchmarks.doc_section import DOC, command_line, load_average, markdown_table, report, text_table, write_section  # noqa: E402
from benchmarks.memory_slice import PUBLISHED, REPO_ROOT, SMALL, Scenario, ensure_slice, planned, remove_slice, slice_model  # noqa: E402

OPTIMIZERS = ("adamw8bit", "adamw")  # AdamW last: its state stays for sampling, as the plan counts it


@dataclass(frozen=True)
class Row:
    """One phase's planned and measured peak of one memory ("host" or "cuda")."""

    phase: str
    memory: str
    planned: int
    measured: int
    seconds: float
    plain_rss: int | None = None  # host rows: RSS with file-backed and shared pages

    @property
    def ratio(self) -> float:
        return self.measured / self.planned if self.planned else math.nan


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    load_before = load_average()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    shape = replace(SMALL if args.quick else PUBLISHED, layers=args.layers)
    scenario = Scenario("gpu_check", qtype=None if args.qtype == "none" else args.qtype,
                        offload_percent=args.offload, lora_rank=args.rank)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="ltx2_gpu_check_"))
    threads, built = torch.get_num_threads(), False
    try:
        if args.quick:
            torch.set_num_threads(1)  # tiny widths gain nothing from more threads, which only spin on a busy machine
        built = ensure_slice(shape, folder, shard_bytes=1000**3)
        rows, step_times, skipped, failed = run_checks(folder, scenario, device, args)
        header = _header(folder, scenario, device, args)
    finally:
        torch.set_num_threads(threads)
        if not args.keep and (built or args.folder is None):
            remove_slice(folder)
    print(format_table(header, rows, step_times, skipped, failed))
    if args.write_doc:
        notes = "\n".join([*(f"- skipped {name}: {why}" for name, why in skipped.items()),
                           *(f"- FAILED {name}: {why}" for name, why in failed.items())])
        tables = [markdown_table(*memory_table(rows)), markdown_table(*timing_table(step_times)), notes]
        write_doc(args.write_doc, device_name(device), command_line(__file__, argv), header, tables, load_before)
    return 1 if failed else 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny widths and few steps (what the suite runs on the CPU)")
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks in the slice (published: 48)")
    parser.add_argument("--qtype", default="qfloat8", help="quantization of the transformer (none: bf16)")
    parser.add_argument("--offload", type=float, default=0.3, help="layer_offloading_transformer_percent (0: none)")
    parser.add_argument("--rank", type=int, default=32, help="LoRA rank")
    parser.add_argument("--steps", type=int, help="timed optimizer steps per optimizer (default 5; --quick 2)")
    parser.add_argument("--sample-steps", type=int, help="denoising steps (default 8; --quick 2)")
    parser.add_argument("--frames", type=int, help="latent frames (default 3; --quick 2)")
    parser.add_argument("--size", type=int, help="latent height and width (default 8; --quick 2)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--folder", type=Path, help="where the slice is written (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the slice it built (a --folder's slice is reused)")
    parser.add_argument("--write-doc", nargs="?", type=Path, const=DOC, metavar="PATH",
                        help=f"write the tables into PATH (default {DOC.relative_to(REPO_ROOT)}), the device's own section")
    args = parser.parse_args(argv)
    quick = args.quick
    args.steps = args.steps or (2 if quick else 5)
    args.sample_steps = args.sample_steps or (2 if quick else 8)
    args.frames = args.frames or (2 if quick else 3)
    args.size = args.size or (2 if quick else 8)
    return args


def run_checks(folder: Path, scenario: Scenario, device: torch.device, args) -> tuple[list[Row], dict, dict, dict]:
    """Load, train with each optimizer, sample, then the bare loop.

    Returns the memory rows, the step seconds, the rows skipped (their package is missing) and the rows that
    failed (8-bit AdamW raising on this machine), each with why.
    """
    from toolkit.errors import ConfigError

    plan = planned(folder, scenario, device.type)
    checkpointing = not args.no_gradient_checkpointing
    meter = steps.PhaseMeter(device)
    model = slice_model(folder, scenario, str(device))
    rows: list[Row] = []
    step_times: dict[str, list[float]] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    try:
        with meter.phase() as measured:
            network = steps.load(model, scenario.lora_rank, checkpointing)
        rows += _rows("loading", "loading", plan, measured)
        batch = steps.SliceBatch.random(model.transformer.config, args.frames, args.size, device)
        optimizer = None
        for name in OPTIMIZERS:
            phase = f"training {name}"
            try:
                optimizer = steps.optimizer_for(network, name)
            except ConfigError as error:  # its package is not installed: say so, check the rest
                skipped[phase] = str(error)
                continue
            try:
                with meter.phase() as measured:
                    step_times[phase] = steps.train_step_seconds(model, network, optimizer, batch, args.steps)
            except Exception as error:
                if name == OPTIMIZERS[-1]:
                    raise
                # The optional 8-bit optimizer failing on this machine is a finding: report it, check the rest.
                failed[phase] = f"{type(error).__name__}: {error}"
                optimizer.zero_grad(set_to_none=True)
            else:
                rows += _rows(phase, "training", plan, measured)
            if name != OPTIMIZERS[-1]:
                del optimizer
                steps.release(device)
        with meter.phase() as measured:
            steps.sample(model, batch, args.sample_steps)
        rows += _rows("sampling", "sampling", plan, measured)
        del model, network, optimizer
        steps.release(device)
        step_times["bare diffusers+peft"] = steps.bare_step_seconds(folder, scenario, batch, args.steps, device, checkpointing)
    finally:
        meter.close()
    return rows, step_times, skipped, failed


def _rows(phase: str, planned_phase: str, plan: dict[str, int], measured: steps.PhaseMemory) -> list[Row]:
    rows = [Row(phase, "host", plan[f"{planned_phase} host"], measured.host, measured.seconds, measured.host_rss)]
    if measured.cuda is not None:
        rows.append(Row(phase, "cuda", plan[f"{planned_phase} device"], measured.cuda, measured.seconds))
    return rows


def memory_table(rows: list[Row]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows: each phase's planned and measured peak per memory, and their ratio."""
    header = ("phase", "memory", "planned", "measured", "measured/planned", "seconds", "plain rss")
    return header, [
        (row.phase, row.memory, _gib(row.planned), _gib(row.measured), f"{row.ratio:.2f}", f"{row.seconds:.2f}",
         "-" if row.plain_rss is None else _gib(row.plain_rss))
        for row in rows
    ]


def timing_table(step_times: dict[str, list[float]]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows: each optimizer's median step and the bare loop's, and their ratio to the bare step."""
    bare = statistics.median(step_times["bare diffusers+peft"])
    return ("step", "median s", "ratio to bare"), [
        (name, f"{statistics.median(times):.4f}", f"{statistics.median(times) / bare:.2f}")
        for name, times in step_times.items()
    ]


def format_table(
    header: str, rows: list[Row], step_times: dict[str, list[float]], skipped: dict[str, str], failed: dict[str, str]
) -> str:
    """The check's report: memory per phase, step times, skipped and failed rows, then `ratio` lines."""
    lines = [header, "", text_table(*memory_table(rows)), "", text_table(*timing_table(step_times)), ""]
    bare = statistics.median(step_times["bare diffusers+peft"])
    lines += [f"skipped {name}: {reason}" for name, reason in skipped.items()]
    lines += [f"FAILED {name}: {reason}" for name, reason in failed.items()]
    lines += [f"ratio {row.phase} {row.memory} measured/planned: {row.ratio:.2f}" for row in rows]
    lines += [
        f"ratio {name} step / bare step: {statistics.median(times) / bare:.2f}"
        for name, times in step_times.items()
        if name != "bare diffusers+peft"
    ]
    return "\n".join(lines)


def _header(folder: Path, scenario: Scenario, device: torch.device, args) -> str:
    files = sorted((folder / "transformer").glob("*.safetensors"))
    size = sum(path.stat().st_size for path in files) / 1e9
    widths = "tiny widths (--quick)" if args.quick else "published widths"
    return (
        f"gpu_check on {device_name(device)}: {args.layers} LTX-2 transformer blocks at {widths}, {size:.2f} GB bf16; "
        f"qtype {scenario.qtype or 'none'}, offload {scenario.offload_percent:.0%}, LoRA rank {scenario.lora_rank}, "
        f"latent {args.frames}x{args.size}x{args.size}, gradient checkpointing "
        f"{'off' if args.no_gradient_checkpointing else 'on'}, {args.steps} timed steps, {args.sample_steps} sampling steps"
    )


def device_name(device: torch.device) -> str:
    """The card's name (torch.cuda.get_device_name), or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}"


def write_doc(doc: Path, device: str, command: str, header: str, tables: list[str], load_before: float) -> Path:
    """Put the tables into `doc` as the section of `device` (`gpu_check.<device>`), replacing only that section."""
    what = (
        f"{header}. The trainer's own paths, in one process, as the 24 GB example trains: the streamed load onto the "
        "device with quantization and layer offloading, the LoRA, optimizer steps with bitsandbytes' 8-bit AdamW and "
        "with torch AdamW, and sampling (denoising steps). Memory: the memory plan's bytes per phase against the "
        "measured peaks (host: anonymous RSS above the baseline taken before loading; CUDA: "
        "`torch.cuda.max_memory_allocated`, reset per phase); the plan counts AdamW's state as two fp32 copies of the "
        "LoRA, so 8-bit AdamW's training row is expected below 1, and leaves activations out. Steps: the median step "
        "of each optimizer / the median step of a bare diffusers + optimum-quanto + peft loop on the same slice "
        "(taken one after the other, not interleaved: run it on an idle machine)."
    )
    body = report(f"GPU check: {device}", command, what, [table for table in tables if table], load_before)
    return write_section(f"gpu_check.{re.sub(r'[^a-z0-9_]+', '-', device.lower()).strip('-')}", body, doc)


def _gib(size: int) -> str:
    return f"{size / 1024**3:.3f} GiB"


if __name__ == "__main__":
    sys.exit(main())
