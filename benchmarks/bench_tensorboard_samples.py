"""A sample video in TensorBoard while training goes on: the steps it stalls, with TensorBoard's Python checksum
and with the C one the trainer uses (toolkit/logging/sinks/tensorboard_checksum.py).

    python benchmarks/bench_tensorboard_samples.py [--frames 49] [--height 320] [--width 512] [--steps 400] [--repeats 3] [--write-doc]

A sample is written as the trainer writes it: `add_video` encodes a GIF in the caller (the same cost with either
checksum, reported apart), and TensorBoard's writer thread checksums and writes the event while the next training
steps run. Three loops of `--steps` steps of a small MLP (1 thread, Python-bound as a training step's launch work
is) are timed, each starting as one sample event is handed to the writer: none written (the bare loop), written
with TensorBoard's own checksum, written with the C one; then the writer is flushed (not timed). Each figure is the
fastest of `--repeats`. The checksum of the event alone is timed with each implementation too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import torch  # noqa: E402
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as python_checksum  # noqa: E402
from tensorboard.summary.writer import record_writer  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.summary import video as video_summary  # noqa: E402

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from toolkit.logging.sinks.tensorboard_checksum import masked_crc32c as c_checksum  # noqa: E402

CHECKSUMS = {"TensorBoard's Python checksum": python_checksum, "C checksum (google-crc32c)": c_checksum}


def sample_frames(frames: int, height: int, width: int) -> torch.Tensor:
    """(1, T, 3, H, W) uint8 frames with moving gradients and grain, which a GIF compresses as it does a sample."""
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    planes = [(ramp + index / frames + 0.1 * torch.rand(height, width, generator=generator)) % 1 for index in range(frames)]
    video = torch.stack(planes).unsqueeze(1).expand(frames, 3, height, width)
    return (video * 255).to(torch.uint8).unsqueeze(0)


def loop_seconds(steps: int, write=None) -> float:
    """`steps` training steps of a small MLP, started right after `write()` hands an event to the writer thread."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs, target = torch.randn(16, 64), torch.randn(16, 64)
    if write is not None:
        write()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(inputs), target).backward()
        optimizer.step()
    return time.perf_counter() - started


def timed_loops(steps: int, summary, folder: Path) -> dict[str, float]:
    """Seconds of the loop with no event, and with the event written under each checksum."""
    seconds = {"no sample written (bare)": loop_seconds(steps)}
    for index, (name, checksum) in enumerate(CHECKSUMS.items()):
        record_writer.masked_crc32c = checksum
        writer = SummaryWriter(str(folder / f"run{index}"), max_queue=1)
        seconds[name] = loop_seconds(steps, lambda: writer.file_writer.add_summary(summary, 0))
        writer.close()  # waits for the event to be written; not timed
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--steps", type=int, default=400, help="training steps timed after the event is handed over")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-doc", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    torch.set_num_threads(1)
    original = record_writer.masked_crc32c

    started = time.perf_counter()
    summary = video_summary("13_Samples/sample/Video", sample_frames(args.frames, args.height, args.width), fps=24)
    encode_s = time.perf_counter() - started
    serialized = summary.SerializeToString()
    event_bytes = len(serialized)
    checksum_s = {}
    for name, checksum in CHECKSUMS.items():
        started = time.perf_counter()
        checksum(serialized)
        checksum_s[name] = time.perf_counter() - started
    runs = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for repeat in range(args.repeats):
                runs.append(timed_loops(args.steps, summary, Path(folder) / str(repeat)))
    finally:
        record_writer.masked_crc32c = original
    loops = {name: min(run[name] for run in runs) for name in runs[0]}
    bare = loops["no sample written (bare)"]
    loop_table = markdown_table(
        ("loop", "seconds", "ratio to bare", "checksum of the event alone, s"),
        [(name, f"{value:.3f}", f"{value / bare:.2f}x", f"{checksum_s[name]:.4f}" if name in checksum_s else "")
         for name, value in loops.items()],
    )
    setting = (
        f"A sample of {args.frames} frames at {args.height}x{args.width}: a {event_bytes / 1e6:.1f} MB GIF event, encoded "
        f"by add_video in {encode_s:.2f} s (either checksum); {args.steps} steps of a 2-layer MLP of width 64, 1 thread, "
        f"the fastest of {args.repeats} runs"
    )
    print(f"{setting}; {machine(load_before)}\n{loop_table}")
    python_name, c_name = CHECKSUMS
    print(f"ratio loop_with_python_checksum {loops[python_name] / bare:.2f}")
    print(f"ratio loop_with_c_checksum {loops[c_name] / bare:.2f}")
    if args.write_doc:
        body = report("TensorBoard sample events", command_line(__file__), f"{setting}. " + " ".join(__doc__.split("\n\n")[2].split()), [loop_table], load_before)
        print(f"wrote {write_section('tensorboard_samples', body)}")


if __name__ == "__main__":
    main()
