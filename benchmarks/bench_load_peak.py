"""Host memory while loading a quantized LTX-2 transformer: from_pretrained then quantize, against streamed.

    python benchmarks/bench_load_peak.py [--layers 8] [--heads 16] [--qtype qint8] [--write-doc]

Builds an LTX2VideoTransformer3DModel narrower than the published one (`--heads` x 128 video,
half as many x 64 audio, the published block layout), saves it as sharded bf16 safetensors in a
temporary diffusers folder, and loads it quantized in a fresh process each way:
  from_pretrained  diffusers' from_pretrained (whole model at bf16), then quantize_module
  streamed         LTX-2's streamed loader: built on meta, each block read, quantized, released
Each child samples its anonymous resident memory (RssAnon: the heap, not the page cache of the
memory-mapped files) every 2 ms; the table gives the peak above the child's baseline, against the
model's bf16 size and its quantized size, and the streamed load's time as a ratio to from_pretrained's.
`--write-doc` puts the table into docs/benchmarks.md (section `load_peak`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402

CHILD = r"""
import json, re, sys, threading, time
from pathlib import Path
import torch
sys.path.insert(0, {repo!r})

def anonymous():
    return int(re.search(r"RssAnon:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

from diffusers import LTX2VideoTransformer3DModel
from extensions_built_in.diffusion_models.ltx2 import streaming
from extensions_built_in.diffusion_models.ltx2.checkpoint import CheckpointSource
from toolkit.memory_management.tensors import module_bytes
from toolkit.quantize import quantize_module, quantize_while_loading
from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE as TRANSFORMER_EXCLUDE
import optimum.quanto, accelerate.utils, tqdm, safetensors  # imported before the baseline

peak, done = 0, False
def sample():
    global peak
    while not done:
        peak = max(peak, anonymous())
        time.sleep(0.002)

folder, how, qtype = {folder!r}, {how!r}, {qtype!r}
baseline = anonymous()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
started = time.perf_counter()
if how == "from_pretrained":
    model = LTX2VideoTransformer3DModel.from_pretrained(folder, subfolder="transformer", torch_dtype=torch.bfloat16)
    quantize_module(model, qtype, TRANSFORMER_EXCLUDE, component="transformer")
else:
    source = CheckpointSource("diffusers", folder, folder)
    plan = streaming.plan_stream(source, "transformer", torch.bfloat16)
    with quantize_while_loading(plan.model, qtype, exclude=TRANSFORMER_EXCLUDE, component="transformer") as (quantize, report):
        model, read = streaming.stream_component(plan, torch.bfloat16, quantize, torch.device("cpu"))
seconds = time.perf_counter() - started
done = True
thread.join()
print(json.dumps({{"peak": peak - baseline, "resident": module_bytes(model), "seconds": seconds}}))
"""


def build(folder: Path, layers: int, heads: int) -> int:
    """Save the transformer (bf16, sharded) as a diffusers folder's transformer/; returns its bf16 bytes."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    from toolkit.memory_management.tensors import module_bytes

    torch.manual_seed(0)
    model = LTX2VideoTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=128,
        cross_attention_dim=heads * 128,
        audio_num_attention_heads=heads // 2,
        audio_attention_head_dim=64,
        audio_cross_attention_dim=heads * 32,
        caption_channels=heads * 128,
        num_layers=layers,
    ).to(torch.bfloat16)
    model.save_pretrained(folder / "transformer", max_shard_size="200MB")
    (folder / "model_index.json").write_text(json.dumps({"transformer": ["diffusers", "LTX2VideoTransformer3DModel"]}))
    return module_bytes(model)


def measure(folder: Path, how: str, qtype: str) -> dict:
    code = CHILD.format(repo=str(REPO_ROOT), folder=str(folder), how=how, qtype=qtype)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{how} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--qtype", default="qint8")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    gib = 1024**3
    with tempfile.TemporaryDirectory() as folder:
        stored = build(Path(folder), args.layers, args.heads)
        results = {how: measure(Path(folder), how, args.qtype) for how in ("from_pretrained", "streamed")}
    base_seconds = results["from_pretrained"]["seconds"]
    table = markdown_table(
        ("loader", "host peak", "/ bf16 size", "resident after", "/ bf16 size", "load time / from_pretrained's"),
        [
            (how, f"{result['peak'] / gib:.2f} GiB", f"{result['peak'] / stored:.2f}x", f"{result['resident'] / gib:.2f} GiB",
             f"{result['resident'] / stored:.2f}x", f"{result['seconds'] / base_seconds:.2f}")
            for how, result in results.items()
        ],
    )
    setting = (
        f"An LTX-2 transformer narrower than the published one: {args.layers} blocks of the published layout, "
        f"{args.heads} x 128 video heads, {stored / gib:.2f} GiB of bf16 in 200 MB shards, loaded with {args.qtype}"
    )
    print(f"\n{setting}\n{table}\n{machine(load_before)}")
    if args.write_doc:
        what = (
            f"{setting}, in a fresh process each way: `from_pretrained` (diffusers, the whole model at bf16, then "
            "`quantize_module`) and streamed (built on meta, each block read, quantized, released). Each process "
            "samples its anonymous resident memory (RssAnon: the heap, not the page cache of the files) every 2 ms; "
            "peaks are above the process's baseline, divided by the model's bf16 size. The load time is a ratio to "
            "from_pretrained's, measured in the same run (giving memory back costs page faults later on a busy "
            "machine)."
        )
        body = report("Load peak", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('load_peak', body)}")

if __name__ == "__main__":
    main()
