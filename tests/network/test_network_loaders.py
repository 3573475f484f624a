"""Our LoRA files apply the trained strength in ComfyUI, Lightricks' ltx-core and diffusers.

ltx-core (requirements-ltx-core.txt) and diffusers run for real: ltx-core reads the file with its own
loader and key map (`SafetensorsStateDictLoader`, `LTXV_LORA_COMFY_RENAMING_MAP`, as
`SingleGPUModelBuilder.lora` does) and fuses it with `apply_loras` into the model's weights (bf16,
as ltx-core holds them); diffusers with `LTX2Pipeline.load_lora_weights`.

ComfyUI is not installed here; its loading rules are written down below as a fixture of facts, from
its source (`comfy/lora.py::model_lora_keys_unet`, `load_lora`, `comfy/weight_adapter/lora.py`):
every model weight ``diffusion_model.<name>.weight`` is reachable from the LoRA key
``diffusion_model.<name>`` (the "generic" format). For such a key ``x`` it reads
``x.lora_B.weight`` as up and ``x.lora_A.weight`` as down, and ``x.alpha`` when present; the patch
is ``strength * (alpha / rank) * up @ down`` with ``alpha / rank`` replaced by 1.0 when there is no
``.alpha`` key. Keys it does not map (``transformer.`` keys for LTX-2) are logged "lora key not
loaded" and skipped.
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


def ltx_core_patches(ltx_core, path: Path, model_weights: dict[str, torch.Tensor], strength: float = 1.0):
    """What ltx-core adds to each model weight (original LTX-2 names) when it fuses the LoRA file at `path`.

    Also returns the file's modules that match no model weight (ltx-core skips those without a word).
    """
    loader = ltx_core.loader
    lora = loader.SafetensorsStateDictLoader().load(str(path), sd_ops=loader.LTXV_LORA_COMFY_RENAMING_MAP)
    base = {name: weight.to(torch.bfloat16) for name, weight in model_weights.items()}
    model = loader.StateDict(base, torch.device("cpu"), 0, {torch.bfloat16})
    fused = loader.apply_loras(model, [loader.LoraStateDictWithStrength(lora, strength)], dtype=torch.float32).sd
    modules = {key.rsplit(".lora_", 1)[0] for key in lora.sd}
    patches = {name: fused[name] - weight.float() for name, weight in base.items() if name[: -len(".weight")] in modules}
    unpatched = [name for name in base if name not in patches and not torch.equal(fused[name], base[name].float())]
    assert unpatched == [], f"ltx-core changed weights the LoRA does not adapt: {unpatched[:5]}"
    return patches, sorted(module for module in modules if f"{module}.weight" not in base)


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


@pytest.fixture(scope="module")
def original_weights(tiny_model_dir) -> dict[str, torch.Tensor]:
    """The tiny transformer's weights under their original LTX-2 names, as ComfyUI and ltx-core see them."""
    weights = {}
    for file in sorted((tiny_model_dir / "transformer").glob("*.safetensors")):
        weights.update(load_file(str(file)))
    return {to_original_name(name): tensor for name, tensor in weights.items() if name.endswith(".weight")}


def _trained_lora(transformer, alpha: float, seed: int, targets: list[str] = TARGETS):
    """A LoRA as training leaves it: both matrices non-zero. Returns (state, trained delta per original name)."""
    from peft.tuners.lora import LoraLayer

    network = attach_lora(transformer, NetworkConfig(linear=RANK, linear_alpha=alpha, target_modules=targets), seed)
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
    transformer, pipeline, original_weights, ltx_core, tmp_path, alpha
):
    state, trained = _trained_lora(transformer, alpha, seed=11)
    assert len(trained) == 2 + 3 * 2  # proj_in, time_embed.linear; three per block in both blocks
    path = save_lora(tmp_path / "lora.safetensors", state, "comfy", torch.float32, {}, alpha, keys=KEYS)
    lora = load_file(str(path))

    comfy, not_loaded = comfyui_patches(lora, list(original_weights))
    fused, unmatched = ltx_core_patches(ltx_core, path, original_weights)
    diffusers = diffusers_patches(pipeline, path, adapter=f"alpha_{alpha:g}")

    assert not_loaded == [] and unmatched == []
    for tool, patches in {"ComfyUI": comfy, "ltx-core": fused, "diffusers": diffusers}.items():
        assert sorted(patches) == sorted(trained), tool
        for name, delta in trained.items():
            torch.testing.assert_close(patches[name], delta, rtol=1e-5, atol=1e-7, msg=f"{tool}: {name}")
    # Half the alpha, half the update: the strength is really in the file.
    if alpha != RANK:
        raw = {key: value for key, value in state.items() if "lora_B" in key}
        folded = {key: lora[f"diffusion_model.{to_original_name(key)}"] for key in raw}
        for key in raw:
            torch.testing.assert_close(folded[key], raw[key] * alpha / RANK)


@pytest.mark.parametrize("version", ["2.3", "2.5"])
def test_ltx_core_and_comfyui_apply_the_trained_delta_of_the_2_3_and_2_5_layers(
    tiny_model_dir, ltx_core, tmp_path, version
):
    """The layers only 2.3+ has (per-head gates, prompt modulation, 2.5's bias-free feed-forwards) under their
    original names: ltx-core fuses exactly what peft trained, at a strength of alpha / rank = 1/2."""
    from diffusers import LTX2VideoTransformer3DModel

    from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

    folder = ensure_tiny_ltx2(version=version) / "transformer"
    weights = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    weights = {to_original_name(name): tensor for name, tensor in weights.items() if name.endswith(".weight")}
    targets = ["attn1.to_gate_logits", "audio_attn2.to_gate_logits", "prompt_adaln.linear", "ff.net.0.proj"]
    transformer = LTX2VideoTransformer3DModel.from_pretrained(folder)
    has_prompt_modulation = transformer.config.cross_attn_mod and transformer.config.use_prompt_adaln_single
    state, trained = _trained_lora(transformer, RANK / 2, 21, targets)
    assert any("to_gate_logits" in name for name in trained)
    assert any("prompt_adaln_single" in name for name in trained) is bool(has_prompt_modulation)
    path = save_lora(tmp_path / "lora.safetensors", state, "comfy", torch.float32, {}, RANK / 2, keys=KEYS)

    fused, unmatched = ltx_core_patches(ltx_core, path, weights)
    comfy, not_loaded = comfyui_patches(load_file(str(path)), list(weights))
    assert unmatched == [] and not_loaded == []
    for tool, patches in {"ltx-core": fused, "ComfyUI": comfy}.items():
        assert sorted(patches) == sorted(trained), tool
        for name, delta in trained.items():
            torch.testing.assert_close(patches[name], delta, rtol=1e-5, atol=1e-7, msg=f"{tool}: {name}")


def test_unfolded_file_would_load_at_the_wrong_strength_in_comfyui_and_ltx_core(
    transformer, original_weights, ltx_core, tmp_path
):
    """Why the strength is folded: the trained tensors alone give ComfyUI and ltx-core twice the update at alpha = rank / 2."""
    state, trained = _trained_lora(transformer, RANK / 2, seed=12)
    path = save_lora(tmp_path / "raw.safetensors", state, "comfy", torch.float32, {}, RANK / 2, fold_strength=False, keys=KEYS)
    lora = load_file(str(path))
    for patches in (comfyui_patches(lora, list(original_weights))[0], ltx_core_patches(ltx_core, path, original_weights)[0]):
        for name, delta in trained.items():
            torch.testing.assert_close(patches[name], 2 * delta, rtol=1e-5, atol=1e-7)


def test_diffusers_file_patches_nothing_in_comfyui_and_ltx_core(transformer, original_weights, ltx_core, tmp_path):
    state, _ = _trained_lora(transformer, RANK, seed=13)
    path = save_lora(tmp_path / "diffusers.safetensors", state, "diffusers", torch.float32, {}, RANK, keys=KEYS)
    lora = load_file(str(path))
    patches, not_loaded = comfyui_patches(lora, list(original_weights))
    assert patches == {} and len(not_loaded) == len(lora)
    fused, unmatched = ltx_core_patches(ltx_core, path, original_weights)
    assert fused == {} and len(unmatched) == len(lora) // 2  # every module's A and B, under `transformer.` names


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
