"""A slice of the LTX-2 transformer for checking the memory plan against memory actually used.

Shared by benchmarks/bench_memory_plan_real_width.py (published widths) and
tests/memory/test_memory_plan_slice.py (the same structure, narrower):

- `build_slice` makes an LTX2VideoTransformer3DModel with a few blocks, fills it with
  random bf16 weights and saves it as sharded safetensors in a diffusers folder;
- `measure` loads it in a fresh process the way training does (LTX2Model's
  `loading.load_one`, then the LoRA, then layer offloading) and runs one training
  step, sampling the process's memory all along;
- `planned` is the memory plan for the same folder and settings.

Host memory is measured as anonymous resident memory (psutil RSS less its file-backed
and shared part): pages of memory-mapped files are page cache the kernel can drop,
which the plan does not count. Plain RSS is reported next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


@dataclass(frozen=True)
class SliceShape:
    """The transformer's widths; `PUBLISHED` is LTX-2.0's (DESIGN.md), with `layers` blocks instead of 48."""

    layers: int = 2
    heads: int = 32
    head_dim: int = 128
    audio_heads: int = 32
    audio_head_dim: int = 64
    cross_attention_dim: int = 4096
    audio_cross_attention_dim: int = 2048
    caption_channels: int = 3840
    in_channels: int = 128
    audio_in_channels: int = 128

    def transformer_args(self) -> dict:
        return {
            "num_layers": self.layers,
            "num_attention_heads": self.heads,
            "attention_head_dim": self.head_dim,
            "audio_num_attention_heads": self.audio_heads,
            "audio_attention_head_dim": self.audio_head_dim,
            "cross_attention_dim": self.cross_attention_dim,
            "audio_cross_attention_dim": self.audio_cross_attention_dim,
            "caption_channels": self.caption_channels,
            "in_channels": self.in_channels,
            "out_channels": self.in_channels,
            "audio_in_channels": self.audio_in_channels,
            "audio_out_channels": self.audio_in_channels,
        }


PUBLISHED = SliceShape()
SMALL = SliceShape(
    layers=2, heads=4, head_dim=32, audio_heads=4, audio_head_dim=16, cross_attention_dim=128,
    audio_cross_attention_dim=64, caption_channels=96, in_channels=16, audio_in_channels=16,
)


@dataclass(frozen=True)
class Scenario:
    """How the slice is loaded: `qtype` None for bf16, an offload share of 0 for none."""

    name: str
    qtype: str | None = None
    offload_percent: float = 0.0
    lora_rank: int = 16

    def model_settings(self) -> dict:
        """The `model:` settings of this scenario (ModelConfig and MemoryPlanSettings use the same names)."""
        return {
            "quantize": self.qtype is not None,
            "qtype": self.qtype or "qfloat8",
            "layer_offloading": self.offload_percent > 0,
            "layer_offloading_transformer_percent": self.offload_percent or 1.0,
        }


SCENARIOS = (
    Scenario("bf16"),
    Scenario("qfloat8", qtype="qfloat8"),
    Scenario("qfloat8 + offload 0.5", qtype="qfloat8", offload_percent=0.5),
)


def build_slice(shape: SliceShape, folder: Path, shard_bytes: int) -> Path:
    """A diffusers folder holding only the transformer slice, in bf16 shards of at most `shard_bytes`.

    Written shard by shard (the same files and index `save_pretrained` writes), so that building a slice of
    several GB holds one shard in memory, not the whole model.
    """
    import diffusers
    from accelerate import init_empty_weights
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    with init_empty_weights():
        transformer = diffusers.LTX2VideoTransformer3DModel(**shape.transformer_args())
    empty = {name: tensor.to(torch.bfloat16) for name, tensor in transformer.state_dict().items()}
    split = split_torch_state_dict_into_shards(
        empty, filename_pattern="diffusion_pytorch_model{suffix}.safetensors", max_shard_size=shard_bytes
    )
    target = folder / "transformer"
    target.mkdir(parents=True, exist_ok=True)
    transformer.save_config(target)
    generator = torch.Generator().manual_seed(0)
    for filename, names in split.filename_to_tensors.items():
        shard = {
            name: torch.randn(empty[name].shape, generator=generator, dtype=torch.float32).mul_(0.02).to(torch.bfloat16)
            for name in names
        }
        save_file(shard, target / filename, metadata={"format": "pt"})
        del shard
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (target / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    index = {
        "_class_name": "LTX2Pipeline",
        "_diffusers_version": diffusers.__version__,
        "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def ensure_slice(shape: SliceShape, folder: Path, shard_bytes: int) -> bool:
    """Build the slice in `folder` unless a slice of the same shape is there already; True when it was built."""
    config = folder / "transformer" / "config.json"
    if config.is_file():
        saved = json.loads(config.read_text())
        if all(saved.get(key) == value for key, value in shape.transformer_args().items()):
            return False
        remove_slice(folder)  # another shape: its shards must not mix with the new ones
    folder.mkdir(parents=True, exist_ok=True)
    build_slice(shape, folder, shard_bytes)
    return True


def remove_slice(folder: Path) -> None:
    """Delete what `build_slice` wrote in `folder`, and the folder when nothing else is left in it."""
    shutil.rmtree(folder / "transformer", ignore_errors=True)
    (folder / "model_index.json").unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def planned(folder: Path, scenario: Scenario, device: str) -> dict[str, int]:
    """The plan's bytes for the slice: loading, training and sampling, host (and device on CUDA)."""
    from dataclasses import replace

    import diffusers
    from accelerate import init_empty_weights

    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.memory_management.plan import MemoryPlanSettings, build_memory_plan
    from toolkit.memory_management.plan_components import describe_component, stored_bytes

    config = diffusers.LTX2VideoTransformer3DModel.load_config(folder / "transformer")
    with init_empty_weights():
        empty = diffusers.LTX2VideoTransformer3DModel.from_config(config)
    # LTX-2's own answers (LoRA targets, quantization excludes, streamed blocks), for the slice alone.
    published = LTX2Model.memory_plan_components(MemoryPlanSettings())
    model = replace(
        published,
        source=f"slice {folder}",
        components={"transformer": describe_component("transformer", empty, stored_bytes(folder / "transformer"))},
        roles={"transformer": "denoiser"},
    )
    settings = MemoryPlanSettings(
        name_or_path=str(folder), lora_rank=scenario.lora_rank, device_is_host=device == "cpu", **scenario.model_settings()
    )
    plan = build_memory_plan(settings, device_total_bytes=None, host_total_bytes=None, model=model)
    training_device = plan.phase("training", "device").total
    sampling_device = plan.phase("sampling", "device").total
    training_host = plan.phase("training", "host").total
    on_host = device == "cpu"  # what the plan puts on the device is in host RAM too
    result = {
        "loading host": plan.phase("loading", "host").total,
        "training host": training_host + (training_device if on_host else 0),
        # the plan has no host phase for sampling: the offloaded layers stay where training has them
        "sampling host": training_host + (sampling_device if on_host else 0),
        "resident tensors": plan.components["transformer"].loaded_bytes,
    }
    if not on_host:
        result["loading device"] = plan.phase("loading", "device").total
        result["training device"] = training_device
        result["sampling device"] = sampling_device
    return result


def measure(folder: Path, scenario: Scenario, device: str, timeout: int = 1800) -> dict[str, int]:
    """Load and train one step in a fresh process (`python -m benchmarks.memory_slice`); its measured bytes."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "PYTHONPATH": str(REPO_ROOT)}
    # A fixed mmap threshold: freed blocks go back to the OS, so a peak is what was live, not heap left over.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_slice", str(folder), json.dumps(asdict(scenario)), device],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measuring {scenario.name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class MemorySampler:
    """Samples this process's anonymous and total RSS every millisecond; `peak()` since the last `reset()`."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak_anon = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> tuple[int, int]:
        info = self.process.memory_info()
        return info.rss - info.shared, info.rss

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            anon, rss = self.sample()
            self.peak_anon, self.peak_rss = max(self.peak_anon, anon), max(self.peak_rss, rss)

    def reset(self) -> tuple[int, int]:
        self.peak_anon, self.peak_rss = self.sample()
        return self.peak_anon, self.peak_rss

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _load_and_step(folder: Path, scenario: Scenario, device: str) -> dict[str, int]:
    """Runs in the child process: LTX2Model's loader, the LoRA, offloading, one AdamW step."""
    from extensions_built_in.diffusion_models.ltx2 import loading
    from toolkit.config import NetworkConfig
    from toolkit.network.attach import attach_network

    model = slice_model(folder, scenario, device)
    import_what_loading_imports()
    if device != "cpu":
        torch.zeros(1, device=device)  # the CUDA context, before the baseline
    sampler = MemorySampler()
    baseline_anon, baseline_rss = sampler.reset()
    reset_cuda_peak(device)
    model.components["transformer"] = loading.load_one(model, "transformer")
    network_config = NetworkConfig(linear=scenario.lora_rank, linear_alpha=scenario.lora_rank)
    network = attach_network(model.transformer, network_config, 0, model.lora_target_pattern())
    model.transformer.train()
    model.offload_transformer()
    measured = {
        "loading host": sampler.peak_anon - baseline_anon,
        "loading host rss": sampler.peak_rss - baseline_rss,
        "resident tensors": _tensor_bytes(model.transformer, exclude_adapters=True),
        "loading device": cuda_peak(device),
    }
    sampler.reset()
    reset_cuda_peak(device)
    _training_step(model, network)
    measured.update(
        {
            "training host": sampler.peak_anon - baseline_anon,
            "training host rss": sampler.peak_rss - baseline_rss,
            "training device": cuda_peak(device),
        }
    )
    sampler.stop()
    return measured


def slice_model(folder: Path, scenario: Scenario, device: str):
    """The LTX2Model a training run makes for the slice in `folder`, before it loads anything: its transformer
    loads as training loads it with `loading.load_one(model, "transformer")`."""
    from extensions_built_in.diffusion_models.ltx2.checkpoint import resolve_source
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.config import ModelConfig

    model = LTX2Model(ModelConfig(name_or_path=str(folder), **scenario.model_settings()), device=device)
    model.source = resolve_source(str(folder))
    return model


def import_what_loading_imports() -> None:
    """Libraries imported lazily on the way (tens of MB of code): imported before the baseline is taken."""
    import diffusers
    import optimum.quanto  # noqa: F401
    import peft  # noqa: F401
    import safetensors.torch  # noqa: F401
    from peft.tuners.lora import LoraModel  # noqa: F401

    from toolkit.quantize import quantize_module  # noqa: F401

    _ = diffusers.LTX2VideoTransformer3DModel


def _training_step(model, network) -> None:
    """One forward, backward and AdamW step of the LoRA on a few random tokens (activations stay small)."""
    from toolkit.models.model_inputs import PromptEmbeds

    transformer, device = model.transformer, model.device
    shape = transformer.config
    audio_channels = 8 if shape.audio_in_channels % 8 == 0 else 1
    video = torch.randn(1, shape.in_channels, 2, 2, 2, device=device)
    audio = torch.randn(1, audio_channels, 4, shape.audio_in_channels // audio_channels, device=device)
    prompt = PromptEmbeds(
        embeds={
            "video": torch.randn(1, 8, shape.caption_channels, device=device),
            "audio": torch.randn(1, 8, shape.caption_channels, device=device),
        },
        attention_mask=torch.ones(1, 8, dtype=torch.long, device=device),
    )
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    prediction = model.get_noise_prediction(video, audio, torch.full((1,), 0.5, device=device), prompt, fps=24.0)
    loss = prediction.video.float().square().mean() + prediction.audio.float().square().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)


def _tensor_bytes(module: torch.nn.Module, exclude_adapters: bool) -> int:
    from toolkit.memory_management import module_bytes

    total = module_bytes(module)
    if exclude_adapters:
        total -= sum(p.numel() * p.element_size() for n, p in module.named_parameters() if "lora_" in n)
    return total


def reset_cuda_peak(device: str) -> None:
    """Start a new CUDA peak (`cuda_peak`) on `device` ("cuda", "cuda:1"); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak(device: str) -> int:
    """The most bytes allocated on `device` since `reset_cuda_peak`; 0 on the CPU."""
    if torch.device(device).type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


if __name__ == "__main__":
    folder_arg, scenario_arg, device_arg = sys.argv[1:4]
    result = _load_and_step(Path(folder_arg), Scenario(**json.loads(scenario_arg)), device_arg)
    print(json.dumps(result))
