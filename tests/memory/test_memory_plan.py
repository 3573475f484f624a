"""The memory plan: published LTX-2 sizes without weights, budgets and the settings it suggests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toolkit.memory_management import MemoryManager, MemoryPlanError, OffloadError, QuantizationError
from extensions_built_in.diffusion_models.ltx2.memory_plan_components import forget_published_specs
from toolkit.memory_management.plan import GIB, MemoryPlanSettings, build_memory_plan, format_plan
from toolkit.quantize import quantize_module
from extensions_built_in.diffusion_models.ltx2.quantization_excludes import LTX2_TRANSFORMER_EXCLUDE

PUBLISHED_PARAMS = {
    "transformer": 18.88e9,
    "vae": 1.22e9,
    "connectors": 1.43e9,
    "audio_vae": 0.053e9,
    "vocoder": 0.056e9,
    "text_encoder": 12.19e9,  # Gemma 3 12B, vision tower included, lm_head tied to the embeddings
}


@pytest.fixture(scope="module")
def published_plan():
    """The default settings (bf16, nothing quantized) against a 24 GiB GPU and 64 GiB of RAM."""
    return build_memory_plan(MemoryPlanSettings(), device_total_bytes=24 * GIB, host_total_bytes=64 * GIB)


def test_published_parameter_counts(published_plan):
    forget_published_specs()  # the real build of the meta components, not a cached one
    plan = build_memory_plan(MemoryPlanSettings(quantize=True), device_total_bytes=24 * GIB, host_total_bytes=64 * GIB)

    for name, expected in PUBLISHED_PARAMS.items():
        assert plan.components[name].params == pytest.approx(expected, rel=0.01), name
    transformer = plan.components["transformer"]
    assert transformer.stored_bytes == 2 * transformer.params  # read at bf16 before it is quantized
    # qfloat8 stores one byte a weight (plus scales); the excluded conditioning layers stay bf16.
    assert 0.5 < transformer.loaded_bytes / transformer.stored_bytes < 0.52
    assert transformer.quantized_layers == plan.lora.layers == 48 * 28


def test_over_24_gib_it_says_which_setting_to_change(published_plan):
    assert not published_plan.fits
    assert published_plan.phase("training", "device").over > 0
    assert published_plan.phase("loading", "host").over == 0  # 64 GiB holds the bf16 transformer
    assert published_plan.suggestions[0] == "set model.quantize: true"
    assert "set model.low_vram: true" in published_plan.suggestions
    assert published_plan.unresolved == []

    fixed = build_memory_plan(published_plan.suggested_settings, device_total_bytes=24 * GIB, host_total_bytes=64 * GIB)
    assert fixed.fits and fixed.suggestions == []


def test_a_small_gpu_gets_an_offload_percent():
    settings = MemoryPlanSettings(quantize=True, quantize_te=True, low_vram=True)
    plan = build_memory_plan(settings, device_total_bytes=16 * GIB, host_total_bytes=64 * GIB)

    assert plan.suggestions == [
        "set model.layer_offloading: true, model.layer_offloading_transformer_percent: 0.4, "
        "model.layer_offloading_text_encoder_percent: 0"
    ]
    suggested = plan.suggested_settings
    assert suggested.layer_offloading and suggested.layer_offloading_transformer_percent == 0.4
    assert build_memory_plan(suggested, device_total_bytes=16 * GIB, host_total_bytes=64 * GIB).fits
    tighter = build_memory_plan(
        MemoryPlanSettings(**{**suggested.__dict__, "layer_offloading_transformer_percent": 0.3}),
        device_total_bytes=16 * GIB,
        host_total_bytes=64 * GIB,
    )
    assert not tighter.fits  # 0.4 is the smallest tenth that fits


def test_too_little_host_ram_is_named_not_hidden():
    # low_vram keeps the bf16 text encoder (22.7 GiB) waiting on the host: 16 GiB cannot load it.
    settings = MemoryPlanSettings(quantize=True, low_vram=True)
    plan = build_memory_plan(settings, device_total_bytes=80 * GIB, host_total_bytes=16 * GIB)

    loading = plan.phase("loading", "host")
    assert loading.over > 0 and loading.label == "loading (peak at vocoder)"  # the last to load: everything waits on the host
    assert len(plan.unresolved) == 1 and "host memory during loading" in plan.unresolved[0]
    assert plan.suggestions == ["set model.quantize_te: true"]  # it shrinks what waits on the host


def test_loading_is_streamed_block_by_block():
    """Nothing on the host but one block in flight when every component goes to the device."""
    plan = build_memory_plan(MemoryPlanSettings(quantize=True), device_total_bytes=80 * GIB, host_total_bytes=64 * GIB)

    transformer = plan.components["transformer"]
    block = transformer.block
    assert block.name.startswith("transformer_blocks.")
    assert block.load_bytes == pytest.approx(transformer.stored_bytes / 48, rel=0.05)  # one of 48 blocks, bf16
    assert block.quantized_bytes == pytest.approx(block.load_bytes / 2, rel=0.02)  # its qfloat8 copy
    assert block.kept_bytes == 0 and block.total == block.load_bytes + block.quantized_bytes
    assert plan.components["vae"].block.name == "whole component"  # it does not stream: loaded whole, then moved
    assert plan.components["vae"].block.total == plan.components["vae"].loaded_bytes
    assert all(step.resident_before == 0 and step.host_share == 0 for step in plan.loading)
    assert plan.phase("loading", "host").total == max(component.block.total for component in plan.components.values())
    assert plan.phase("loading", "host").label == "loading (peak at vae)"  # 4.55 GiB of fp32 before it moves
    assert plan.phase("loading", "device").total == sum(component.loaded_bytes for component in plan.components.values())


@pytest.mark.parametrize("example", ["train_lora_ltx2_24gb.yaml", "train_lora_ltx2.3_24gb.yaml"])
def test_the_24gb_examples_load_in_32_gib_of_host_ram(example):
    from toolkit.config.loader import load_config

    job = load_config(Path(__file__).parents[2] / "config" / "examples" / example)
    process = job.config.process[0]
    settings = MemoryPlanSettings.from_config(process.model, process.network)
    plan = build_memory_plan(settings, device_total_bytes=24 * GIB, host_total_bytes=32 * GIB)

    assert plan.fits, format_plan(plan)
    loading = plan.phase("loading", "host")
    assert 20 * GIB < loading.total <= 32 * GIB
    text_encoder, transformer = plan.loading[0], plan.loading[2]
    assert (text_encoder.component, transformer.component) == ("text_encoder", "transformer")
    # The transformer's device share streams to the device; only its offloaded 30 % stays on the host.
    assert transformer.host_share == plan.components["transformer"].offloaded_bytes
    assert transformer.resident_before >= text_encoder.host_share  # low_vram: the text encoder waits on the host
    assert all(phase.total <= 24 * GIB for phase in plan.phases if phase.memory == "device")
    text = format_plan(plan)
    assert "Loading in this order: text_encoder -> connectors -> transformer" in text
    assert "Loading, component by component (host RAM):" in text


def test_the_plan_matches_the_real_quantized_and_offloaded_tiny_transformer(tiny_model_dir):
    from diffusers import LTX2VideoTransformer3DModel

    settings = MemoryPlanSettings(
        name_or_path=str(tiny_model_dir),
        dtype="fp32",
        quantize=True,
        qtype="qint8",
        layer_offloading=True,
        layer_offloading_transformer_percent=0.5,
    )
    plan = build_memory_plan(settings, device_total_bytes=GIB, host_total_bytes=GIB)
    transformer = LTX2VideoTransformer3DModel.from_pretrained(tiny_model_dir / "transformer")
    planned = plan.components["transformer"]

    assert planned.params == sum(p.numel() for p in transformer.parameters())
    assert planned.stored_bytes == 4 * planned.params  # the tiny checkpoint is fp32
    quantized = quantize_module(transformer, "qint8", LTX2_TRANSFORMER_EXCLUDE, component="transformer")
    assert planned.quantized_layers == len(quantized.quantized)
    assert planned.loaded_bytes == quantized.bytes_after
    offloaded = MemoryManager.attach(transformer, "cpu", 0.5)
    assert planned.offloaded_bytes == offloaded.bytes_on_host
    assert planned.offloaded_layers == len(offloaded.managed)


def test_tiny_ltx2_by_name_reads_the_built_folder(tiny_model_dir):
    plan = build_memory_plan(MemoryPlanSettings(name_or_path="tiny-ltx2"), host_total_bytes=GIB)

    assert plan.source == f"folder {tiny_model_dir} (LTX-2.0)"
    assert plan.components["text_encoder"].class_name == "Gemma3ForConditionalGeneration"
    assert 0 < plan.components["transformer"].params < 1e6
    if not torch.cuda.is_available():
        assert plan.device_budget is None and "model.vram_gb" in plan.device_budget_source
        assert all(phase.over == 0 for phase in plan.phases if phase.memory == "device")


# The adapters the tests train: the examples' LoRA, filters reaching past the blocks (test_trainer_lora_formats.py),
# exclusions, and LoKr at a low rank, at full rank and with a factor (test_trainer_lokr.py, test_trainer_lora_metadata.py).
NETWORKS = {
    "lora": {"linear": 8, "linear_alpha": 8},
    "lora_filtered": {
        "linear": 4, "linear_alpha": 8, "target_modules": ["attn1.to_q", "ff.net.2", "proj_in", "time_embed.linear"],
    },
    "lora_excluded": {"linear": 16, "target_modules": ["to_q", "ff.net.0.proj"], "exclude_modules": ["audio_attn1.to_q"]},
    "lokr": {"type": "lokr", "linear": 4, "linear_alpha": 2.0},
    "lokr_full_rank": {"type": "lokr", "linear": 1, "linear_alpha": 1, "lokr_full_rank": True},
    "lokr_factor": {"type": "lokr", "linear": 4, "lokr_factor": 2, "target_modules": ["attn1.to_q", "ff.net.2"]},
}


@pytest.fixture(scope="module")
def tiny_transformers(tiny_model_dir) -> dict:
    """Each tiny model's transformer as the trainer loads it (real weights), by `model.name_or_path`."""
    from diffusers import LTX2VideoTransformer3DModel

    from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_NAMES, ensure_tiny_ltx2

    return {
        name: LTX2VideoTransformer3DModel.from_pretrained(ensure_tiny_ltx2(version=version) / "transformer")
        for name, version in TINY_NAMES.items()
    }


@pytest.mark.parametrize("network", NETWORKS.values(), ids=NETWORKS)
def test_the_plans_lora_has_the_attached_networks_parameters(network, tiny_transformers):
    """A new run sizes its saves before loading from the plan's count (save_space.check_before_loading)."""
    import copy

    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.config import ModelConfig, NetworkConfig
    from toolkit.dry_run import planned_lora
    from toolkit.network.attach import attach_network

    config = NetworkConfig(**network)
    for name, transformer in tiny_transformers.items():
        attached = attach_network(copy.deepcopy(transformer), config, 0, LTX2Model.lora_target_pattern())
        planned = planned_lora(ModelConfig(name_or_path=name, arch="ltx2", dtype="fp32"), config)
        assert (planned.params, planned.layers) == (attached.num_parameters, len(attached.target_modules)), name
        assert planned.kind == {"lora": "LoRA", "lokr": "LoKr"}[config.type]
        assert planned.name == ("LoKr at full rank" if config.lokr_full_rank else f"{planned.kind} rank {config.linear}")


def test_sizing_the_lora_builds_only_the_denoiser_and_agrees_with_the_whole_plan(tiny_model_dir):
    from toolkit.memory_management.plan import plan_lora
    from toolkit.memory_management.plan_components import planned_model

    for settings in (MemoryPlanSettings(name_or_path="tiny-ltx2", arch="ltx2"), MemoryPlanSettings(version="2.3")):
        denoiser_only = planned_model(settings, roles=("denoiser",))
        assert list(denoiser_only.components) == ["transformer"] and denoiser_only.roles == {"transformer": "denoiser"}
        assert plan_lora(settings) == build_memory_plan(settings).lora


def test_format_plan_is_a_readable_table(published_plan):
    text = format_plan(published_plan)

    lines = text.splitlines()
    assert lines[0].startswith("Memory plan for published LTX-2.0 19B architecture")
    transformer_row = next(line for line in lines if line.startswith("transformer "))
    assert "LTX2VideoTransformer3DModel" in transformer_row and "18.88 B" in transformer_row
    assert any(line.startswith("training") and "OVER by" in line for line in lines)
    assert "To fit: set model.quantize: true" in text
    assert "- Largest blocks in flight: text_encoder model.language_model.embed_tokens 1.88 GiB" in text


def test_settings_come_from_the_job_config():
    from toolkit.config import ModelConfig, NetworkConfig

    model = ModelConfig(name_or_path="Lightricks/LTX-2", quantize=True, qtype="qint8", low_vram=True)
    settings = MemoryPlanSettings.from_config(model, NetworkConfig(linear=32))

    assert (settings.qtype, settings.low_vram, settings.lora_rank, settings.te_dtype) == ("qint8", True, 32, "bf16")
    assert build_memory_plan(settings, device_total_bytes=80 * GIB, host_total_bytes=256 * GIB).lora.rank == 32


def test_bad_settings_say_what_to_use(tmp_path):
    with pytest.raises(QuantizationError, match="'qint4'"):
        build_memory_plan(MemoryPlanSettings(quantize=True, qtype="uint4"))
    with pytest.raises(OffloadError, match="model.layer_offloading_transformer_percent"):
        build_memory_plan(MemoryPlanSettings(layer_offloading_transformer_percent=1.5))
    with pytest.raises(MemoryPlanError, match="model_index.json"):
        build_memory_plan(MemoryPlanSettings(name_or_path=str(tmp_path)))


def test_blocks_are_grouped_as_the_streamed_loader_groups_them():
    from toolkit.memory_management.plan_loading import largest_block, layer_blocks, load_steps

    names = ["proj_in", "time_embed.linear", "transformer_blocks.0.attn1.to_q", "transformer_blocks.0.ff.proj",
             "transformer_blocks.1.attn1.to_q", "norm_out"]
    blocks = layer_blocks(names, (r"(?:.*\.)?transformer_blocks\.\d+",))
    assert blocks == ["proj_in", "time_embed", "transformer_blocks.0", "transformer_blocks.0", "transformer_blocks.1", "norm_out"]
    assert layer_blocks(names, None) == ["whole component"] * len(names)

    load = [10, 20, 100, 300, 100, 5]
    quantized = [0, 0, 50, 150, 50, 0]
    to_device = largest_block(blocks, load, quantized, kept_on_host=False)
    assert (to_device.name, to_device.total) == ("transformer_blocks.0", 400 + 200)  # bf16 copy + qfloat8 copy
    on_host = largest_block(blocks, load, quantized, kept_on_host=True)
    assert on_host.total == 400  # its quantized copy is what stays: counted in the host share, not twice

    steps = load_steps({"a": (7, 1), "b": (3, 2)}, {"a": to_device, "b": on_host})
    assert [(s.resident_before, s.host_peak) for s in steps] == [(0, 7 + 600), (7, 7 + 3 + 400)]
