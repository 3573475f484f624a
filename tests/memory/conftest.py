"""Fixtures of the memory tests: a small LTX-2 transformer with a LoRA, and inputs for it."""

from __future__ import annotations

import pytest
import torch

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
FRAMES, HEIGHT, WIDTH, AUDIO_FRAMES = 2, 2, 2, 3


def build_transformer(seed: int = 0, lora: bool = True) -> torch.nn.Module:
    """A 2-block LTX2VideoTransformer3DModel (fp32, random weights), frozen, with a rank-4 LoRA.

    The LoRA starts non-zero (init_lora_weights=False) so its gradients are not trivially equal.
    """
    from peft import LoraConfig

    from extensions_built_in.diffusion_models.ltx2.tiny.model import build_transformer as build_tiny_transformer

    transformer = build_tiny_transformer(seed)
    transformer.requires_grad_(False)
    if lora:
        transformer.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGETS, init_lora_weights=False)
        )
    return transformer


@pytest.fixture(scope="session")
def transformer_inputs() -> dict:
    generator = torch.Generator().manual_seed(1)
    return {
        "hidden_states": torch.randn(1, FRAMES * HEIGHT * WIDTH, 4, generator=generator),
        "audio_hidden_states": torch.randn(1, AUDIO_FRAMES, 4, generator=generator),
        "encoder_hidden_states": torch.randn(1, 5, 32, generator=generator),
        "audio_encoder_hidden_states": torch.randn(1, 5, 32, generator=generator),
        "timestep": torch.tensor([500.0]),
        "num_frames": FRAMES,
        "height": HEIGHT,
        "width": WIDTH,
        "audio_num_frames": AUDIO_FRAMES,
        "return_dict": False,
    }


def run_step(transformer: torch.nn.Module, inputs: dict) -> dict:
    """One forward and backward: outputs, LoRA gradients and the video input's gradient."""
    video = inputs["hidden_states"].clone().requires_grad_(True)
    video_out, audio_out = transformer(**{**inputs, "hidden_states": video})
    loss = video_out.square().mean() + audio_out.square().mean()
    loss.backward()
    return {
        "video": video_out.detach(),
        "audio": audio_out.detach(),
        "lora_grads": {name: p.grad.clone() for name, p in transformer.named_parameters() if p.requires_grad},
        "input_grad": video.grad.clone(),
    }


@pytest.fixture(scope="session")
def make_transformer():
    return build_transformer


@pytest.fixture(scope="session")
def reference_step(transformer_inputs) -> dict:
    """The step without offloading or quantization, that every offloaded run must reproduce."""
    return run_step(build_transformer(), transformer_inputs)


@pytest.fixture
def traced(tmp_path):
    """An enabled tracer writing to tmp_path; yields a function reading the trace records back."""
    import json

    from toolkit.trace import TraceConfig, init_tracer, reset_tracer

    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, heartbeat_s=0, console=False), is_main_process=True)

    def records() -> list[dict]:
        reset_tracer()
        return [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]

    yield records
    reset_tracer()
