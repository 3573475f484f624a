"""LoRA filters checked against the transformer built on the meta device, before loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extensions_built_in.diffusion_models.ltx2.lora_preflight import meta_transformer, transformer_config_folder
from toolkit.config import ModelConfig, NetworkConfig, parse_config
from toolkit.network.lora import resolve_targets
from toolkit.preflight import problems_before_loading

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"


def lora_problems(network: dict, name_or_path: str = "tiny-ltx2") -> list[str]:
    raw = {
        "job": "extension",
        "config": {
            "name": "lora",
            "process": [
                {
                    "type": "sd_trainer",
                    "model": {"name_or_path": name_or_path},
                    "network": network,
                    "datasets": [{"folder_path": str(DEMO_CLIPS)}],
                }
            ],
        },
    }
    return problems_before_loading(parse_config(raw))


def test_defaults_and_good_filters_pass() -> None:
    assert lora_problems({}) == []
    # (an exclude written as a whole trailing name excludes the same whether matched as a suffix or a substring)
    good = {"target_modules": ["to_q", "ff.net.0.proj"], "exclude_modules": ["audio_attn1.to_q"]}
    assert lora_problems(good) == []


def test_a_target_that_matches_nothing_is_named_with_close_names() -> None:
    (problem,) = lora_problems({"target_modules": ["attn1.to_q", "attn1.to_qq"]})
    assert problem.startswith(
        "config.process[0].network.target_modules: 'attn1.to_qq' matches no linear layer of "
        "LTX2VideoTransformer3DModel (tiny-ltx2); did you mean 'attn1.to_q'"
    )


def test_an_exclude_that_excludes_nothing_and_one_that_excludes_everything() -> None:
    (problem,) = lora_problems({"exclude_modules": ["attn9"]})
    assert problem == (
        "config.process[0].network.exclude_modules: 'attn9' excludes none of the 56 targeted layers of "
        "LTX2VideoTransformer3DModel (tiny-ltx2)"
    )
    (problem,) = lora_problems({"target_modules": ["attn1.to_q"], "exclude_modules": ["attn1.to_q"]})
    assert problem == (
        "config.process[0].network.exclude_modules: excludes every one of the 2 targeted layers; nothing would train"
    )


def test_meta_transformer_has_the_loaded_models_module_names(tiny_model) -> None:
    network = NetworkConfig(target_modules=["to_q", "proj_in"], exclude_modules=["audio"])
    meta = meta_transformer(None, True)
    assert next(meta.parameters()).device.type == "meta"
    assert resolve_targets(meta, network) == resolve_targets(tiny_model.transformer, network)


def test_a_diffusers_folder_is_read_from_its_transformer_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = ModelConfig(name_or_path=str(tiny_model_dir))
    assert transformer_config_folder(model) == tiny_model_dir / "transformer"
    assert lora_problems({"target_modules": ["attn1.to_q"]}, str(tiny_model_dir)) == []
    # A folder whose transformer has one block fewer: block 1's layers are not there.
    folder = tmp_path / "one_block"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    config = json.loads((tiny_model_dir / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps({**config, "num_layers": 1}))
    (problem,) = lora_problems({"target_modules": ["transformer_blocks.1.attn1.to_q"]}, str(folder))
    assert f"matches no linear layer of LTX2VideoTransformer3DModel ({folder / 'transformer'})" in problem


@pytest.mark.parametrize("name_or_path", ["Lightricks/LTX-2"])
def test_a_hub_id_is_checked_against_the_published_architecture(name_or_path: str) -> None:
    assert lora_problems({"target_modules": ["transformer_blocks.47.attn1.to_q"]}, name_or_path) == []
    (problem,) = lora_problems({"target_modules": ["transformer_blocks.48.attn1.to_q"]}, name_or_path)
    assert "(published LTX-2 default)" in problem
