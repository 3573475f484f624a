"""The LoRA files the trainer saves (comfy, the default, and diffusers) load in diffusers and reproduce the trained model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.trainer.conftest import set_up_trainer, train_steps, write_config

RANK = 4
ALPHA = 8.0  # not the rank: a file that loses alpha loads at the wrong strength
# LTX-2's default targets plus modules whose original LTX-2 names differ from diffusers' names.
TARGETS = [
    "attn1.to_q",
    "audio_attn2.to_out.0",
    "ff.net.2",
    "proj_in",  # a whole dotted name: not audio_proj_in
    "audio_proj_in",
    "time_embed.linear",
    "audio_time_embed.linear",
    "av_cross_attn_video_scale_shift.linear",
    "av_cross_attn_audio_v2a_gate.linear",
]
# diffusers name -> original LTX-2 (ComfyUI) name, written out by hand from the original checkpoint layout.
ORIGINAL_NAMES = {
    "proj_in": "patchify_proj",
    "audio_proj_in": "audio_patchify_proj",
    "time_embed.linear": "adaln_single.linear",
    "audio_time_embed.linear": "audio_adaln_single.linear",
    "av_cross_attn_video_scale_shift.linear": "av_ca_video_scale_shift_adaln_single.linear",
    "av_cross_attn_audio_v2a_gate.linear": "av_ca_v2a_gate_adaln_single.linear",
    "transformer_blocks.0.attn1.to_q": "transformer_blocks.0.attn1.to_q",
    "transformer_blocks.1.audio_attn2.to_out.0": "transformer_blocks.1.audio_attn2.to_out.0",
    "transformer_blocks.1.ff.net.2": "transformer_blocks.1.ff.net.2",
}
PIPELINE_ARGS = dict(
    prompt="a red square moving left to right, with a 440 Hz tone",
    height=32,
    width=32,
    num_frames=9,
    frame_rate=24.0,
    num_inference_steps=3,
    guidance_scale=1.0,
    audio_guidance_scale=1.0,
    stg_scale=0.0,
    audio_stg_scale=0.0,
    modality_scale=1.0,
    audio_modality_scale=1.0,
    spatio_temporal_guidance_blocks=None,
    output_type="pt",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache_dir):
    """A trainer after 3 high-lr steps, its LoRA saved once in each format (float32)."""
    folder = tmp_path_factory.mktemp("formats")
    config = write_config(
        folder,
        {
            "network.linear": RANK,
            "network.linear_alpha": ALPHA,
            "network.target_modules": TARGETS,
            "train.lr": 1e-2,
            "train.steps": 3,
            "save.dtype": "float32",
            "save.format": "diffusers",  # not the default: the run warns about it, and each format is saved below
        },
    )
    trainer = set_up_trainer(config)
    train_steps(trainer, 3)
    files = {}
    for fmt in ("diffusers", "comfy"):
        trainer.config.save.format = fmt
        trainer.save(final=True)
        files[fmt] = shutil.copy(trainer.saved["final"], folder / f"lora_{fmt}.safetensors")
    trainer.model.transformer.eval()
    return trainer, {fmt: Path(path) for fmt, path in files.items()}


def _pipeline(model_dir: Path, lora: Path | None):
    from diffusers import LTX2Pipeline

    pipeline = LTX2Pipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    if lora is not None:
        pipeline.load_lora_weights(str(lora))
    return pipeline


def _generate(pipeline) -> tuple[torch.Tensor, torch.Tensor]:
    output = pipeline(**PIPELINE_ARGS, generator=torch.Generator().manual_seed(7))
    return output.frames[0].float(), output.audio[0].float()


def _loaded_lora(pipeline) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    (adapter,) = pipeline.transformer.peft_config
    return get_peft_model_state_dict(pipeline.transformer, adapter_name=adapter)


def test_lora_b_matrices_trained_away_from_zero(trained):
    trainer, _ = trained
    state = trainer.network.state_dict()
    b_norms = [state[name].abs().max().item() for name in state if "lora_B" in name]
    # 6 top-level modules, and attn1.to_q, audio_attn2.to_out.0, ff.net.2 in each of the 2 blocks.
    assert len(b_norms) == len(trainer.network.target_modules) == 12
    assert min(b_norms) > 1e-3


def test_diffusers_file_has_transformer_prefixed_peft_names(trained):
    trainer, files = trained
    tensors = load_file(files["diffusers"])
    expected = {f"transformer.{name}" for name in trainer.network.state_dict()}
    assert set(tensors) == expected
    assert "transformer.audio_proj_in.lora_A.weight" in tensors
    assert all(t.dtype == torch.float32 for t in tensors.values())


def test_comfy_file_has_original_ltx2_names(trained):
    trainer, files = trained
    tensors = load_file(files["comfy"])
    assert all(key.startswith("diffusion_model.") for key in tensors)
    for diffusers_name, original_name in ORIGINAL_NAMES.items():
        for part in ("lora_A", "lora_B"):
            key = f"diffusion_model.{original_name}.{part}.weight"
            assert key in tensors, key
            strength = ALPHA / RANK if part == "lora_B" else 1.0  # folded into B: every loader applies it
            torch.testing.assert_close(tensors[key], trainer.network.state_dict()[f"{diffusers_name}.{part}.weight"] * strength)
    assert not any("proj_in" in key or "time_embed" in key or "av_cross_attn" in key for key in tensors)
    assert len(tensors) == 2 * len(trainer.network.target_modules)


def test_both_files_say_format_and_step_in_their_metadata(trained):
    for fmt, path in trained[1].items():
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        assert metadata["format"] == fmt
        assert metadata["step"] == "3"


def test_diffusers_loads_both_files_to_the_same_weights(trained, tiny_model_dir):
    """The files carry the strength in B (alpha / rank = 2 here, exact in float32) and say alpha = rank."""
    trainer, files = trained
    from_diffusers = _loaded_lora(_pipeline(tiny_model_dir, files["diffusers"]))
    from_comfy = _loaded_lora(_pipeline(tiny_model_dir, files["comfy"]))
    trained_state = trainer.network.state_dict()
    assert set(from_diffusers) == set(from_comfy) == set(trained_state)
    for name, tensor in trained_state.items():
        expected = tensor * (ALPHA / RANK) if ".lora_B." in name else tensor
        torch.testing.assert_close(from_diffusers[name], expected, rtol=0, atol=0)
        torch.testing.assert_close(from_comfy[name], expected, rtol=0, atol=0)


def test_the_run_log_warns_that_comfyui_and_ltx_core_skip_the_diffusers_format(trained):
    trainer, _ = trained
    log = (trainer.run_folder / "train.log").read_text()
    (line,) = [line for line in log.splitlines() if "save.format: comfy" in line]
    assert "WARNING" in line and "ComfyUI" in line and "ltx-core" in line
    assert str(trainer.run_folder / "trainer_test.safetensors") in line


def test_by_default_every_lora_is_in_the_original_layout_and_nothing_is_said_about_it(traced_tiny_run):
    log = (traced_tiny_run / "train.log").read_text()
    assert "save.format" not in log
    written = sorted(traced_tiny_run.glob("*.safetensors"))
    assert [path.name for path in written] == [
        f"{traced_tiny_run.name}.safetensors", f"{traced_tiny_run.name}_000000006.safetensors",
        f"{traced_tiny_run.name}_000000012.safetensors",
    ]
    for path in written:
        with safe_open(str(path), "pt") as handle:
            assert handle.metadata()["format"] == "comfy"
            assert handle.keys() and all(key.startswith("diffusion_model.") for key in handle.keys())


def test_checkpoint_keeps_the_trained_tensors_and_alpha_for_resume(trained):
    trainer, _ = trained
    from toolkit.network.formats import load_lora_state

    checkpoint = trainer.saved["checkpoint"] / "lora.safetensors"
    with safe_open(str(checkpoint), "pt") as handle:
        assert handle.metadata()["strength_in_weights"] == "false"
    stored = load_lora_state(checkpoint)
    for name, tensor in trainer.network.state_dict().items():
        torch.testing.assert_close(stored[name], tensor, rtol=0, atol=0)


def test_both_files_change_the_pipeline_output_the_same_way(trained, tiny_model_dir):
    _, files = trained
    base_frames, base_audio = _generate(_pipeline(tiny_model_dir, None))
    outputs = {fmt: _generate(_pipeline(tiny_model_dir, path)) for fmt, path in files.items()}
    for frames, audio in outputs.values():
        assert (frames - base_frames).abs().max() > 1e-3
        assert (audio - base_audio).abs().max() > 1e-4
    torch.testing.assert_close(outputs["comfy"][0], outputs["diffusers"][0])
    torch.testing.assert_close(outputs["comfy"][1], outputs["diffusers"][1])


@pytest.mark.parametrize("fmt", ["diffusers", "comfy"])
def test_loaded_file_predicts_what_the_trained_transformer_predicts(trained, tiny_model_dir, fmt):
    """The file keeps the LoRA's strength (alpha / rank = 2 here), not only its matrices."""
    trainer, files = trained
    model = trainer.model
    example = trainer.data.examples[0]
    generator = torch.Generator().manual_seed(3)
    video = example.video_latents[None] + torch.randn(example.video_latents[None].shape, generator=generator)
    audio = example.audio_latents[None] + torch.randn(example.audio_latents[None].shape, generator=generator)
    sigmas = torch.tensor([0.6])
    prompt = example.prompt
    with torch.no_grad():
        trained_prediction = model.get_noise_prediction(video, audio, sigmas, prompt, fps=example.fps)
        trainer.network.set_enabled(False)
        base_prediction = model.get_noise_prediction(video, audio, sigmas, prompt, fps=example.fps)
        trainer.network.set_enabled(True)
        trained_transformer = model.components["transformer"]
        model.components["transformer"] = _pipeline(tiny_model_dir, files[fmt]).transformer
        try:
            loaded_prediction = model.get_noise_prediction(video, audio, sigmas, prompt, fps=example.fps)
        finally:
            model.components["transformer"] = trained_transformer
    assert (trained_prediction.video - base_prediction.video).abs().max() > 1e-3
    torch.testing.assert_close(loaded_prediction.video, trained_prediction.video, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loaded_prediction.audio, trained_prediction.audio, rtol=1e-4, atol=1e-5)


def test_every_linear_name_survives_the_round_trip_through_the_original_format(trained):
    """to_original_name is the inverse of diffusers' converter for every layer a LoRA could target."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers

    from extensions_built_in.diffusion_models.ltx2.lora_names import to_original_name

    transformer = trained[0].model.transformer
    names = [
        name.removesuffix(".base_layer")
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and ".lora_" not in name  # adapted layers: their base_layer
    ]
    assert len(names) == 82
    original = {f"diffusion_model.{to_original_name(name)}.lora_A.weight": torch.zeros(1) for name in names}
    converted = _convert_non_diffusers_ltx2_lora_to_diffusers(original)
    assert sorted(converted) == sorted(f"transformer.{name}.lora_A.weight" for name in names)
