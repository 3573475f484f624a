"""`network.type: lokr`: peft's LoKr trains, saves, resumes, and its file applies the trained update in ComfyUI.

ComfyUI's LoKr rule (`comfy/weight_adapter/lokr.py::LoKrAdapter`), written
down as a fact: for the LoRA key ``x`` it reads ``x.lokr_w1`` (or
``x.lokr_w1_a @ x.lokr_w1_b``) and ``x.lokr_w2`` (or ``x.lokr_w2_a @
x.lokr_w2_b``); the patch is ``strength * scale * kron(w1, w2)`` where scale is
``alpha / rank`` only when an ``x.alpha`` key exists and a factor is
decomposed, else 1.0. Keys are mapped as for LoRA (``diffusion_model.<original
name>``).
"""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.trainer.conftest import lora_tensors, set_up_trainer, train_steps, write_config
from extensions_built_in.diffusion_models.ltx2.lora_names import LTX2_LORA_FILE_KEYS as KEYS, LTX2_LORA_TARGETS, to_original_name

RANK, ALPHA = 4, 2.0
NAME = "lokr_test"


def comfyui_lokr_patches(lora: dict[str, torch.Tensor], model_weights: list[str]) -> dict[str, torch.Tensor]:
    patches = {}
    for weight in model_weights:
        x = f"diffusion_model.{weight.removesuffix('.weight')}"
        if f"{x}.lokr_w1" not in lora and f"{x}.lokr_w1_a" not in lora:
            continue
        dim = None
        w1 = lora.get(f"{x}.lokr_w1")
        if w1 is None:
            dim, w1 = lora[f"{x}.lokr_w1_b"].shape[0], lora[f"{x}.lokr_w1_a"] @ lora[f"{x}.lokr_w1_b"]
        w2 = lora.get(f"{x}.lokr_w2")
        if w2 is None:
            dim, w2 = lora[f"{x}.lokr_w2_b"].shape[0], lora[f"{x}.lokr_w2_a"] @ lora[f"{x}.lokr_w2_b"]
        alpha = lora[f"{x}.alpha"].item() if f"{x}.alpha" in lora else None
        scale = alpha / dim if alpha is not None and dim is not None else 1.0
        patches[weight] = scale * torch.kron(w1.float(), w2.float())
    return patches


def trained_deltas(transformer) -> dict[str, torch.Tensor]:
    """peft's own update of each adapted weight, under the original LTX-2 names."""
    from peft.tuners.lokr.layer import LoKrLayer

    return {
        to_original_name(f"{name}.weight"): module.get_delta_weight("default").detach().float()
        for name, module in transformer.named_modules()
        if isinstance(module, LoKrLayer) and "default" in module.lokr_w1.keys() | module.lokr_w1_a.keys()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache_dir):
    folder = tmp_path_factory.mktemp("lokr")
    settings = {
        "network.type": "lokr",
        "network.linear": RANK,
        "network.linear_alpha": ALPHA,
        "train.lr": 1e-2,
        "train.steps": 6,
        "save.dtype": "float32",
        "save.format": "comfy",
    }
    config = write_config(folder, settings, name=NAME)
    trainer = set_up_trainer(config)
    before = lora_tensors(trainer)
    results = train_steps(trainer, 3)
    trainer.save()
    trainer.save(final=True)
    return {"trainer": trainer, "config": config, "before": before, "results": results, "folder": folder}


def test_lokr_adapter_is_peft_lokr_and_trains(trained):
    trainer = trained["trainer"]
    assert trainer.network.kind == "lokr"
    names = [name for name, _ in trainer.network.named_parameters()]
    assert names and all(".lokr_w" in name for name in names)
    assert all(torch.isfinite(torch.tensor(result.loss)) for result in trained["results"])
    after = lora_tensors(trainer)
    w1 = [name for name in after if name.endswith("lokr_w1")]
    assert w1 and all(trained["before"][name].abs().max() == 0 for name in w1)  # starts as the base model
    assert all(after[name].abs().max() > 1e-4 for name in w1)


def test_lokr_file_applies_the_trained_update_in_comfyui(trained):
    trainer = trained["trainer"]
    lora = load_file(str(trainer.saved["final"]))
    assert all(key.startswith("diffusion_model.") and ".lokr_w" in key for key in lora)
    with safe_open(str(trainer.saved["final"]), "pt") as handle:
        header = handle.metadata()
    assert header["network_type"] == "lokr" and header["strength_in_weights"] == "true"
    assert "lora_adapter_metadata" not in header
    model_weights = [  # the base model's weights, as ComfyUI holds them (peft wraps each adapted one as base_layer)
        to_original_name(n.replace(".base_layer", "")) for n, _ in trainer.model.transformer.named_parameters()
        if n.endswith(".weight") and ".lokr_" not in n
    ]
    deltas = trained_deltas(trainer.model.transformer)
    patches = comfyui_lokr_patches(lora, model_weights)
    assert sorted(patches) == sorted(deltas) and len(deltas) == len(trainer.network.target_modules)
    for name, delta in deltas.items():
        assert delta.abs().max() > 0
        torch.testing.assert_close(patches[name], delta, rtol=1e-5, atol=1e-8)


def test_resume_restores_the_lokr_weights_exactly(trained):
    trainer = trained["trainer"]
    resumed = set_up_trainer(trained["config"])
    assert resumed.step == 3 and resumed.network.kind == "lokr"
    expected = lora_tensors(trainer)
    for name, tensor in lora_tensors(resumed).items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)


def test_pretrained_lokr_file_loads_at_the_trained_update_under_another_alpha(trained, tiny_model_dir):
    """network.pretrained_lora_path: SDTrainer loads the file with load_lora_state(alpha=, rank=) of its own adapter."""
    from diffusers import LTX2VideoTransformer3DModel

    from toolkit.config import NetworkConfig
    from toolkit.network.formats import load_lora_state
    from toolkit.network.attach import attach_network

    trainer = trained["trainer"]
    transformer = LTX2VideoTransformer3DModel.from_pretrained(tiny_model_dir / "transformer")
    network = attach_network(transformer, NetworkConfig(type="lokr", linear=RANK, linear_alpha=1.0), 1, LTX2_LORA_TARGETS)
    network.load_state_dict(load_lora_state(trainer.saved["final"], alpha=network.alpha, rank=network.rank, keys=KEYS))
    expected = trained_deltas(trainer.model.transformer)
    loaded = trained_deltas(transformer)
    assert sorted(loaded) == sorted(expected)
    for name, delta in loaded.items():
        torch.testing.assert_close(delta, expected[name], rtol=1e-5, atol=1e-8)


def test_run_log_says_where_a_lokr_file_cannot_load(trained):
    log = (trained["trainer"].run_folder / "train.log").read_text()
    lines = [line for line in log.splitlines() if "is a LoKr" in line]  # once per run (the resume test adds one)
    line = lines[0]
    assert "WARNING" in line and "ltx-core" in line and "load_lora_weights" in line and "ComfyUI reads it" in line


def test_diffusers_refuses_the_lokr_file_loudly(trained, tiny_model_dir):
    from diffusers import LTX2Pipeline

    pipeline = LTX2Pipeline.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="lora"):
        pipeline.load_lora_weights(str(trained["trainer"].saved["final"]))


def test_full_rank_lokr_keeps_both_factors_whole_at_scale_one(tiny_model_dir):
    from diffusers import LTX2VideoTransformer3DModel

    from toolkit.config import NetworkConfig
    from toolkit.network.attach import attach_network

    transformer = LTX2VideoTransformer3DModel.from_pretrained(tiny_model_dir / "transformer")
    config = NetworkConfig(type="lokr", linear=1, linear_alpha=1, lokr_full_rank=True)
    network = attach_network(transformer, config, 0, LTX2_LORA_TARGETS)
    state = network.state_dict()
    assert network.alpha == network.rank == max(max(m.in_features, m.out_features) for n, m in transformer.named_modules()
                                                 if n in network.target_modules)
    assert any(key.endswith(".lokr_w2") for key in state)
    assert not any(key.endswith((".lokr_w2_a", ".lokr_w1_a")) for key in state)


def test_lokr_factor_sets_the_small_factor_size(tiny_model_dir):
    from diffusers import LTX2VideoTransformer3DModel

    from toolkit.config import NetworkConfig
    from toolkit.network.attach import attach_network

    transformer = LTX2VideoTransformer3DModel.from_pretrained(tiny_model_dir / "transformer")
    network = attach_network(transformer, NetworkConfig(type="lokr", linear=4, lokr_factor=2, target_modules=["attn1.to_q"]), 0)
    w1 = network.state_dict()["transformer_blocks.0.attn1.to_q.lokr_w1"]
    assert tuple(w1.shape) == (2, 2)
