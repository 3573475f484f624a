"""Our LoRA files apply the trained strength in ComfyUI, Lightricks' ltx-core and diffusers.

ComfyUI and ltx-core are not installed here; their loading rules are written
down below as a fixture of facts, from their source:

- ComfyUI (`comfy/lora.py::model_lora_keys_unet`, `load_lora`,
  `comfy/weight_adapter/lora.py`): every model weight
  ``diffusion_model.<name>.weight`` is reachable from the LoRA key
  ``diffusion_model.<name>`` (the "generic" format). For such a key ``x`` it
  reads ``x.lora_B.weight`` as up and ``x.lora_A.weight`` as down, and
  ``x.alpha`` when present; the patch is ``strength * (alpha / rank) * up @ down``
  with ``alpha / rank`` replaced by 1.0 when there is no ``.alpha`` key. Keys it
  does not map (``transformer.`` keys for LTX-2) are logged "lora key not
  loaded" and skipped.
- ltx-core (`ltx_core/loader/sd_ops.py::LTXV_LORA_COMFY_RENAMING_MAP`,
  `fuse_loras.py::_prepare_deltas`): the LoRA keys lose their
  ``diffusion_model.`` prefix; for each model weight ``<name>.weight`` (original
  LTX-2 names) the delta is ``(lora_B * strength) @ lora_A`` from
  ``<name>.lora_B.weight`` and ``<name>.lora_A.weight``; alpha is never read and
  other keys are ignored.

diffusers is installed: its `LTX2Pipeline.load_lora_weights` is run for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from toolkit.config import NetworkConfig
from extensions_built_in.diffusion_models.ltx2.lora_names import LTX2_LORA_FILE_KEYS as KEYS, to_original_name
from toolkit.network.formats import load_lora_state, save_lora
from toolkit.network.lora import attach_lora

RANK = 4
TARGETS = ["attn1.to_q", "audio_attn2.to_out.0", "ff.net.2", "proj_in", "time_embed.linear"]


def comfyui_patches(lora: dict[str, torch.Tensor], model_weights: list[str], strength: float = 1.0):
    """ComfyUI's LoRA patch per original model weight name, and the LoRA keys it did not load."""
    key_map = {f"diffusion_model.{name.removesuffix('.weight')}": name for name in model_weights}
    patches, loaded = {}, set()
    for x, weight in key_map.items():
        up, down = f"{x}.lora_B.weight", f"{x}.lora_A.weight"
        if up not in lora:
            continue
        alpha = lora[f"{x}.alpha"].item() if f"{x}.alpha" in lora else None
        scale = alpha / lora[down].shape[0] if alpha is not None else 1.0
        patches[weight] = strength * scale * (lora[up].float() @ lora[down].float())
        loaded |= {up, down} | ({f"{x}.alpha"} if alpha is not None else set())
    return patches, sorted(set(lora) - loaded)


def ltx_core_patches(lora: dict[str, torch.Tensor], model_weights: list[str], strength: float = 1.0):
    """ltx-core's delta per original model weight name."""
    renamed = {key.replace("diffusion_model.", "", 1): value for key, value in lora.items()}
    patches = {}
    for weight in model_weights:
        prefix = weight.removesuffix(".weight")
        key_a, key_b = f"{prefix}.lora_A.weight", f"{prefix}.lora_B.weight"
        if key_a in renamed and key_b in renamed:
            patches[weight] = (renamed[key_b].float() * strength) @ renamed[key_a].float()
    return patches


def diffusers_patches(pipeline, path: Path, adapter: str) -> dict[str, torch.Tensor]:
    """What `load_lora_weights` adds to each weight (peft's delta), under the original LTX-2 names."""
    from peft.tuners.lora import LoraLayer

    pipeline.load_lora_weights(str(path), adapter_name=adapter)
    patches = {}
    for name, module in pipeline.transformer.named_modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            patches[to_original_name(f"{name}.weight")] = module.get_delta_weight(adapter).detach().float()
    pipeline.delete_adapters(adapter)
    return patches


@pytest.fixture
def transformer(tiny_model_dir):
    """A fresh tiny transformer for each test (an adapter, once attached, stays wrapped around its layers)."""
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel.from_pretrained(tiny_model_dir / "transformer")


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from diffusers import LTX2Pipeline

    return LTX2Pipeline.from_pretrained(tiny_model_dir)


@pytest.fixture
def original_weights(transformer) -> list[str]:
    """The transformer's weight names as ComfyUI and ltx-core see them (original LTX-2 layout)."""
    return [to_original_name(name) for name, _ in transformer.named_parameters() if name.endswith(".weight")]


def _trained_lora(transformer, alpha: float, seed: int):
    """A LoRA as training leaves it: both matrices non-zero. Returns (state, trained delta per original name)."""
    from peft.tuners.lora import LoraLayer

    network = attach_lora(transformer, NetworkConfig(linear=RANK, linear_alpha=alpha, target_modules=TARGETS), seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    deltas = {
        to_original_name(f"{name}.weight"): module.get_delta_weight("default").detach().float()
        for name, module in transformer.named_modules()
        if isinstance(module, LoraLayer) and "default" in module.lora_A
    }
    return {key: value.clone() for key, value in network.state_dict().items()}, deltas


@pytest.mark.parametrize("alpha", [float(RANK), RANK / 2])
def test_comfy_file_applies_the_trained_delta_in_comfyui_ltx_core_and_diffusers(
    transformer, pipeline, original_weights, tmp_path, alpha
):
    state, trained = _trained_lora(transformer, alpha, seed=11)
    assert len(trained) == 2 + 3 * 2  # proj_in, time_embed.linear; three per block in both blocks
    path = save_lora(tmp_path / "lora.safetensors", state, "comfy", torch.float32, {}, alpha, keys=KEYS)
    lora = load_file(str(path))

    comfy, not_loaded = comfyui_patches(lora, original_weights)
    ltx_core = ltx_core_patches(lora, original_weights)
    diffusers = diffusers_patches(pipeline, path, adapter=f"alpha_{alpha:g}")

    assert not_loaded == []
    for tool, patches in {"ComfyUI": comfy, "ltx-core": ltx_core, "diffusers": diffusers}.items():
        assert sorted(patches) == sorted(trained), tool
        for name, delta in trained.items():
            torch.testing.assert_close(patches[name], delta, rtol=1e-5, atol=1e-7, msg=f"{tool}: {name}")
    # Half the alpha, half the update: the strength is really in the file.
    if alpha != RANK:
        raw = {key: value for key, value in state.items() if "lora_B" in key}
        folded = {key: lora[f"diffusion_model.{to_original_name(key)}"] for key in raw}
        for key in raw:
            torch.testing.assert_close(folded[key], raw[key] * alpha / RANK)


def test_unfolded_file_would_load_at_the_wrong_strength_in_comfyui_and_ltx_core(transformer, original_weights, tmp_path):
    """Why the strength is folded: the trained tensors alone give ComfyUI and ltx-core twice the update at alpha = rank / 2."""
    state, trained = _trained_lora(transformer, RANK / 2, seed=12)
    path = save_lora(tmp_path / "raw.safetensors", state, "comfy", torch.float32, {}, RANK / 2, fold_strength=False, keys=KEYS)
    lora = load_file(str(path))
    for patches in (comfyui_patches(lora, original_weights)[0], ltx_core_patches(lora, original_weights)):
        for name, delta in trained.items():
            torch.testing.assert_close(patches[name], 2 * delta, rtol=1e-5, atol=1e-7)


def test_diffusers_file_patches_nothing_in_comfyui_and_ltx_core(transformer, original_weights, tmp_path):
    state, _ = _trained_lora(transformer, RANK, seed=13)
    path = save_lora(tmp_path / "diffusers.safetensors", state, "diffusers", torch.float32, {}, RANK, keys=KEYS)
    lora = load_file(str(path))
    patches, not_loaded = comfyui_patches(lora, original_weights)
    assert patches == {} and len(not_loaded) == len(lora)
    assert ltx_core_patches(lora, original_weights) == {}


@pytest.mark.parametrize("fmt", ["diffusers", "comfy"])
def test_header_says_the_strength_is_in_the_weights_and_alpha_equals_rank(transformer, tmp_path, fmt):
    import json

    state, _ = _trained_lora(transformer, RANK / 2, seed=14)
    path = save_lora(tmp_path / f"{fmt}.safetensors", state, fmt, torch.float16, {"step": 5}, RANK / 2, keys=KEYS)
    with safe_open(str(path), "pt") as handle:
        header = handle.metadata()
    config = json.loads(header["lora_adapter_metadata"])
    assert config["transformer.r"] == RANK and config["transformer.lora_alpha"] == RANK
    assert header["trained_alpha"] == "2.0" and header["trained_rank"] == "4"
    assert header["strength_in_weights"] == "true" and header["step"] == "5"


@pytest.mark.parametrize("fold", [True, False])
def test_load_lora_state_rescales_to_the_adapter_it_is_loaded_into(transformer, tmp_path, fold):
    """pretrained_lora_path: any alpha the file was written with becomes the same update under the config's alpha."""
    state, _ = _trained_lora(transformer, RANK / 2, seed=15)
    path = save_lora(tmp_path / "lora.safetensors", state, "comfy", torch.float32, {}, RANK / 2, fold_strength=fold, keys=KEYS)
    same_alpha = load_lora_state(path, alpha=RANK / 2, keys=KEYS)
    double_alpha = load_lora_state(path, alpha=float(RANK), keys=KEYS)
    for key, tensor in state.items():
        torch.testing.assert_close(same_alpha[key], tensor)
        expected = tensor / 2 if "lora_B" in key else tensor
        torch.testing.assert_close(double_alpha[key], expected)


def test_kohya_alpha_keys_are_read_and_not_loaded_as_weights(transformer, tmp_path):
    """A LoRA from another trainer with ComfyUI-style `.alpha` tensors starts training at its own strength."""
    from safetensors.torch import save_file

    state, _ = _trained_lora(transformer, float(RANK), seed=16)
    tensors = {f"diffusion_model.{to_original_name(key)}": value for key, value in state.items()}
    modules = {key.rsplit(".lora_", 1)[0] for key in tensors}
    tensors.update({f"{module}.alpha": torch.tensor(1.0) for module in modules})
    save_file(tensors, str(tmp_path / "kohya.safetensors"))
    loaded = load_lora_state(tmp_path / "kohya.safetensors", alpha=float(RANK), keys=KEYS)
    assert sorted(loaded) == sorted(state)
    for key, tensor in state.items():
        torch.testing.assert_close(loaded[key], tensor / RANK if "lora_B" in key else tensor)


def test_the_diffusers_format_warning_names_the_file_the_tools_and_the_fix():
    from toolkit.network.formats import format_warning

    message = format_warning("diffusers", "out/my_lora.safetensors")
    assert "out/my_lora.safetensors" in message and "save.format: comfy" in message
    assert "ComfyUI" in message and "ltx-core" in message
    assert format_warning("comfy", "out/my_lora.safetensors") is None
