"""What layer offloading costs: LoRA step time at 50% and 100% offloaded against none.

    python benchmarks/bench_offloading.py                 # CPU, or CUDA when there
    python benchmarks/bench_offloading.py --device cuda --layers 8 --qtype qfloat8
    python benchmarks/bench_offloading.py --device cpu --write-doc      # the table into docs/benchmarks.md

A step is one forward and backward of an LTX2VideoTransformer3DModel (random
weights, frozen, with a rank-16 LoRA) on random video and audio tokens. On the
CPU the weights never leave host memory, so the ratio is the bookkeeping cost
of the offloaded forward (the backward recompute of each managed layer); on
CUDA it adds the host-to-device copies, and the peak device memory shows what
offloading saves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from toolkit.memory_management import MemoryManager  # noqa: E402
from toolkit.quantize import quantize_module  # noqa: E402
from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE  # noqa: E402

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]


def build_transformer(args: argparse.Namespace) -> torch.nn.Module:
    from diffusers import LTX2VideoTransformer3DModel
    from peft import LoraConfig

    torch.manual_seed(0)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=args.heads,
        attention_head_dim=args.head_dim,
        cross_attention_dim=args.heads * args.head_dim,
        audio_in_channels=16,
        audio_out_channels=16,
        audio_num_attention_heads=args.heads,
        audio_attention_head_dim=args.head_dim // 2,
        audio_cross_attention_dim=args.heads * args.head_dim // 2,
        num_layers=args.layers,
        caption_channels=64,
        rope_double_precision=False,
        rope_type="split",
    )
    transformer.requires_grad_(False)
    if args.qtype:
        quantize_module(transformer, args.qtype, LTX2_TRANSFORMER_EXCLUDE, component="transformer")
    transformer.add_adapter(LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS))
    return transformer


def make_inputs(device: torch.device, frames: int, size: int) -> dict:
    generator = torch.Generator().manual_seed(1)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    return {
        "hidden_states": noise(1, frames * size * size, 16),
        "audio_hidden_states": noise(1, 4 * frames, 16),
        "encoder_hidden_states": noise(1, 16, 64),
        "audio_encoder_hidden_states": noise(1, 16, 64),
        "timestep": torch.tensor([500.0], device=device),
        "num_frames": frames,
        "height": size,
        "width": size,
        "audio_num_frames": 4 * frames,
        "return_dict": False,
    }


def seconds_per_step(transformer: torch.nn.Module, inputs: dict, steps: int, device: torch.device) -> float:
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        video, audio = transformer(**inputs)
        (video.square().mean() + audio.square().mean()).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(args: argparse.Namespace) -> None:
    load_before = load_average()
    device = torch.device(args.device)
    inputs = make_inputs(device, args.frames, args.size)
    rows = []
    for offload_percent in (None, 0.5, 1.0):
        transformer = build_transformer(args)
        if offload_percent is None:
            transformer.to(device)
        else:
            MemoryManager.attach(transformer, device, offload_percent)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        step_seconds = seconds_per_step(transformer, inputs, args.steps, device)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        rows.append((offload_percent, step_seconds, peak))
        del transformer

    baseline = rows[0][1]
    params = sum(p.numel() for p in build_transformer(args).parameters())
    setting = (
        f"LTX2VideoTransformer3DModel, {args.layers} layers, {args.heads} heads x {args.head_dim}, {params / 1e6:.1f} M "
        f"parameters, qtype {args.qtype or 'none'}, rank-16 LoRA, latent {args.frames}x{args.size}x{args.size}, "
        f"device {device}, median of {args.steps} steps after one warm-up step"
    )
    table = markdown_table(
        ("offloaded", "s per step", "ratio to none", "peak device memory"),
        [
            ("none" if offload_percent is None else f"{offload_percent:.0%}", f"{step_seconds:.4f}",
             f"{step_seconds / baseline:.2f}x", "-" if peak is None else f"{peak / 1024**2:.0f} MiB")
            for offload_percent, step_seconds, peak in rows
        ],
    )
    print(f"{setting}; {machine(load_before)}\n{table}")
    if args.write_doc:
        what = (
            f"{setting}. A step is one forward and backward of the transformer (random weights, frozen, the LoRA "
            "trained) on random video and audio tokens; the baseline is the same step with nothing offloaded, the "
            "rows `MemoryManager.attach` with that share of the linear/conv weights kept on the host. On the CPU the "
            "weights never leave host memory, so the ratio is the bookkeeping of the offloaded forward (the backward "
            "recompute of each managed layer); on CUDA it adds the host-to-device copies, and the peak device memory "
            "shows what offloading saves."
        )
        title = f"Layer offloading, {device.type}"
        body = report(title, command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section(f'offloading.{device.type}', body)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=8, help="latent height and width")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--qtype", default=None, help="quantize the transformer first (qfloat8, qint8, qint4)")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    run(parser.parse_args())

if __name__ == "__main__":
    main()
