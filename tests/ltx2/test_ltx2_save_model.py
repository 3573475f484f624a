"""LTX2Model.save_model: the one place a LoRA trained on the model becomes a file (seed 000's save point)."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from toolkit.errors import CheckpointError
from toolkit.network.formats import load_lora_state

LORA = {
    "transformer.proj_in.lora_A.weight": torch.arange(8.0).reshape(2, 4) / 10,
    "transformer.proj_in.lora_B.weight": torch.ones(16, 2) / 4,
}


def test_save_model_writes_the_lora_with_the_models_version_in_its_header(tiny_model, tmp_path):
    path = tiny_model.save_model(
        tmp_path / "lora.safetensors", LORA, "diffusers", torch.float32, {"step": 5}, alpha=2.0, fold_strength=False,
    )
    assert path == tmp_path / "lora.safetensors"
    loaded = load_lora_state(path)
    assert set(loaded) == set(LORA)
    for name, tensor in LORA.items():
        assert torch.equal(loaded[name], tensor), name
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    assert header["ltx2_version"] == tiny_model.variant.version == "2.0" and header["step"] == "5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors"]


def test_save_model_refuses_non_finite_weights_and_keeps_the_old_file(tiny_model, tmp_path):
    target = tmp_path / "lora.safetensors"
    tiny_model.save_model(target, LORA, "comfy", torch.float16, {}, alpha=2.0)
    before = target.read_bytes()
    broken = {**LORA, "transformer.proj_in.lora_B.weight": torch.full((16, 2), float("nan"))}
    with pytest.raises(CheckpointError, match="not finite"):
        tiny_model.save_model(target, broken, "comfy", torch.float16, {}, alpha=2.0)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors"]
