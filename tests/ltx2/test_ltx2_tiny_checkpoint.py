"""The tiny LTX-2: deterministic from its seed, saved in diffusers layout, loaded back unchanged."""

from __future__ import annotations

import json

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2.checkpoint import COMPONENT_ORDER, load_component, resolve_source
from extensions_built_in.diffusion_models.ltx2.tiny.model import build_components, save_tiny_ltx2

SEED = 11
MODULES = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")


@pytest.fixture(scope="module")
def built():
    return build_components(SEED)


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    return save_tiny_ltx2(tmp_path_factory.mktemp("tiny") / "tiny-ltx2", seed=SEED)


def assert_same_tensors(left: torch.nn.Module, right: torch.nn.Module, name: str) -> None:
    left_state, right_state = left.state_dict(), right.state_dict()
    assert sorted(left_state) == sorted(right_state), name
    unequal = [key for key in left_state if not torch.equal(left_state[key], right_state[key])]
    assert unequal == [], f"{name}: tensors differ: {unequal[:5]}"


def public_settings(config) -> dict:
    """A diffusers config without its bookkeeping entries (_class_name, _diffusers_version, ...)."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_each_module_loads_back_equal_through_load_component(built, saved_folder, name):
    source = resolve_source(str(saved_folder))
    loaded = load_component(source, name, torch.float32)
    assert type(loaded) is type(built[name])
    assert len(loaded.state_dict()) > 0
    assert_same_tensors(loaded, built[name], name)


def test_tokenizer_and_scheduler_load_back_equal(built, saved_folder):
    source = resolve_source(str(saved_folder))
    tokenizer = load_component(source, "tokenizer", None)
    text = "a red square, 440 Hz"
    assert tokenizer(text).input_ids == built["tokenizer"](text).input_ids
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<pad>"
    scheduler = load_component(source, "scheduler", None)
    assert public_settings(scheduler.config) == public_settings(built["scheduler"].config)
    assert scheduler.config.use_dynamic_shifting is True


def test_same_seed_gives_equal_weights_and_another_seed_does_not(built):
    again = build_components(SEED)
    for name in MODULES:
        assert_same_tensors(again[name], built[name], name)
    other = build_components(SEED + 1)
    weight = "transformer_blocks.0.attn1.to_q.weight"
    assert not torch.equal(other["transformer"].state_dict()[weight], built["transformer"].state_dict()[weight])


def test_folder_is_small_diffusers_layout(saved_folder):
    files = [path for path in saved_folder.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 2 * 1024 * 1024
    index = json.loads((saved_folder / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"
    assert set(COMPONENT_ORDER) <= set(index)
    assert index["transformer"] == ["diffusers", "LTX2VideoTransformer3DModel"]
    assert index["audio_vae"] == ["diffusers", "AutoencoderKLLTX2Audio"]
    for name in MODULES:
        assert (saved_folder / name).is_dir(), name
    assert json.loads((saved_folder / "tiny_ltx2.json").read_text())["seed"] == SEED
