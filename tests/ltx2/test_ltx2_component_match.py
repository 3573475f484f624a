"""Components of different LTX-2 releases in one checkpoint are refused from their configs, before any weight
is read: the error names both components and the files their configs came from (component_match.py)."""

from __future__ import annotations

import json
import shutil

import pytest

import run
from extensions_built_in.diffusion_models.ltx2.checkpoint import resolve_source
from extensions_built_in.diffusion_models.ltx2.component_match import component_configs, mismatches
from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2
from tests.conftest import REPO_ROOT, tiny_model_config
from toolkit.errors import ConfigError, ModelLoadError


def _folder(tmp_path, version: str, name: str = "mixed"):
    folder = tmp_path / name
    shutil.copytree(ensure_tiny_ltx2(version=version), folder)
    return folder


def _swap(folder, component: str, version: str) -> None:
    """`component`/ of the tiny LTX-`version` in place of the folder's own, listed in model_index.json as it is there."""
    other = ensure_tiny_ltx2(version=version)
    shutil.rmtree(folder / component)
    shutil.copytree(other / component, folder / component)
    index = json.loads((folder / "model_index.json").read_text())
    index[component] = json.loads((other / "model_index.json").read_text())[component]
    (folder / "model_index.json").write_text(json.dumps(index))


def _problems(folder) -> list[str]:
    return mismatches(component_configs(resolve_source(str(folder))))


@pytest.mark.parametrize("version", ["2.0", "2.3", "2.5"])
def test_the_components_of_one_release_fit(version, tiny_cache_dir):
    assert _problems(ensure_tiny_ltx2(version=version)) == []


@pytest.mark.parametrize(
    ("component", "version", "said"),
    [
        ("vae", "2.0", "the video decoder has 3 up-blocks where LTX-2.3's has 4"),
        ("vocoder", "2.0", "LTX-2.3 uses LTX2VocoderWithBWE"),
        ("text_encoder", "2.5", "LTX-2.3 reads a Gemma 3 text encoder"),
        ("connectors", "2.0", "the connectors have one shared projection (2.0)"),
    ],
)
def test_a_2_3_transformer_with_a_component_of_another_release_is_named(tmp_path, tiny_cache_dir, component, version, said):
    folder = _folder(tmp_path, "2.3")
    _swap(folder, component, version)
    (problem,) = [p for p in _problems(folder) if f"the {component} (" in p]
    assert said in problem
    assert f"the transformer (LTX2VideoTransformer3DModel, {folder}/transformer/config.json), LTX-2.3" in problem
    assert f"{folder}/{component}/config.json" in problem


def test_latent_channels_are_checked_between_the_transformer_and_both_vaes(tmp_path, tiny_cache_dir):
    folder = _folder(tmp_path, "2.0")
    for component, key in (("vae", "latent_channels"), ("audio_vae", "latent_channels")):
        path = folder / component / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), key: 2}))
    problems = _problems(folder)
    assert any("takes 4 latent channels but the vae (AutoencoderKLLTX2Video" in p and "makes 2" in p for p in problems)
    assert any("takes audio tokens of 4 features but the audio_vae" in p and "makes 8 (2 latent channels" in p for p in problems)


def test_load_model_and_the_dry_run_refuse_the_mix_with_exit_2_before_any_weight(tmp_path, tiny_cache_dir, capsys):
    folder = _folder(tmp_path, "2.3")
    _swap(folder, "vae", "2.0")
    model = LTX2Model(tiny_model_config(name_or_path=str(folder)), "cpu")
    with pytest.raises(ConfigError, match=r"model.name_or_path: the transformer .* and the vae .* 3 up-blocks"):
        model.load_model()
    assert model.components == {}  # nothing was read
    example = REPO_ROOT / "config" / "examples" / "train_lora_ltx2.3_tiny.yaml"
    code = run.main([str(example), "--dry-run", "--set", f"config.process.0.model.name_or_path={folder}"])
    assert code == run.EXIT_CONFIG_ERROR
    assert "the video decoder has 3 up-blocks where LTX-2.3's has 4" in capsys.readouterr().err


def test_a_missing_vae_folder_is_named_as_the_vae_not_as_a_vocoder_class(tmp_path, tiny_cache_dir):
    folder = _folder(tmp_path, "2.0")
    shutil.rmtree(folder / "vae")
    model = LTX2Model(tiny_model_config(name_or_path=str(folder)), "cpu")
    with pytest.raises(ModelLoadError) as caught:
        model.load_model()
    message = str(caught.value)
    assert f"{folder / 'vae'} has no config.json" in message and "lists the vae (AutoencoderKLLTX2Video)" in message
    assert "copy vae/ from the same LTX-2 release" in message
    assert "Vocoder" not in message and "Gemma" not in message
    assert model.components == {}
