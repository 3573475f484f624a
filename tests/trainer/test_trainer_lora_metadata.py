"""What a trained run's LoRA file says about itself (modelspec.*, ss_*, ours), and that every loader still takes it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from extensions_built_in.sd_trainer.lora_metadata import TrainedClips, file_metadata, run_metadata
from tests.trainer.conftest import build_trainer, write_config
from toolkit.data.media import read_video

NAME_KEYS = ("modelspec.title", "ss_output_name")


@pytest.fixture(scope="module")
def final_lora(traced_tiny_run):
    """(header, config) of the traced tiny run's final LoRA (12 steps, default save.format)."""
    config = build_trainer(traced_tiny_run.parent.parent / f"{traced_tiny_run.name}.yaml").config
    with safe_open(str(traced_tiny_run / f"{traced_tiny_run.name}.safetensors"), "pt") as handle:
        return handle.metadata(), config


def test_the_file_names_its_base_model_training_and_clips_as_lora_browsers_read_them(final_lora, traced_tiny_run):
    header, config = final_lora
    dataset, train, network = config.datasets[0], config.train, config.network
    assert all(header[key] == traced_tiny_run.name for key in NAME_KEYS)
    assert header["modelspec.sai_model_spec"] == "1.0.0"
    assert header["modelspec.architecture"] == "ltx-2.0/lora" and header["ss_base_model_version"] == "ltx-2.0"
    assert header["modelspec.implementation"] == "https://github.com/Lightricks/LTX-2"  # save.format: comfy
    side = dataset.resolution[0]
    assert header["modelspec.resolution"] == f"{side}x{side}" and header["ss_resolution"] == f"({side}, {side})"
    # shrink_video_to_frames (on by default) spreads num_frames over each 17-frame, 24 fps demo clip: 12 fps.
    spread = read_video(sorted(Path(dataset.folder_path).glob("*.mp4"))[0], num_frames=dataset.num_frames, spread=True)
    assert spread.fps == 12.0 and dataset.shrink_video_to_frames and dataset.fps is None
    assert (header["num_frames"], header["fps"], header["resolution"]) == (str(dataset.num_frames), "12", f"{side}x{side}")
    assert (header["ss_network_dim"], header["ss_network_alpha"]) == (str(network.linear), f"{network.linear_alpha:g}")
    assert (header["ss_steps"], header["ss_max_train_steps"]) == ("12", str(train.steps)) == (header["step"], "12")
    clips = len(list(Path(dataset.folder_path).glob("*.mp4")))
    assert (header["ss_num_train_images"], header["ss_num_reg_images"]) == (str(clips), "0")
    assert (header["ss_optimizer"], header["ss_lr_scheduler"]) == (train.optimizer, train.lr_scheduler)
    assert float(header["ss_learning_rate"]) == train.lr
    saved = datetime.fromisoformat(header["modelspec.date"])
    assert timedelta(0) <= datetime.now(timezone.utc) - saved < timedelta(hours=2)
    assert "modelspec.trigger_phrase" not in header and "ss_tag_frequency" not in header  # no trigger_word
    # The project's own entries stay.
    assert header["ltx2_version"] == "2.0" and header["trained_alpha"] == f"{float(network.linear_alpha)}"
    assert json.loads(header["lora_adapter_metadata"])["transformer.r"] == network.linear


def test_trigger_word_lokr_and_diffusers_format_are_said(tmp_path):
    config = build_trainer(
        write_config(tmp_path, {"trigger_word": "sks", "network.type": "lokr", "network.lokr_factor": 4})
    ).config
    clips = TrainedClips(((9, 64, 96, 24.0), (17, 64, 64, 12.0), (9, 64, 96, 24.0)), regularisation=2)
    names = SimpleNamespace(architecture="ltx-2.3", implementations={"comfy": "original", "diffusers": "diffusers"})
    entries = run_metadata(config, "my_lora", names, "lokr", clips)
    header = file_metadata(entries, names, "diffusers", 7, now=datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert header["modelspec.trigger_phrase"] == "sks"
    assert json.loads(header["ss_tag_frequency"]) == {"1_sks": {"sks": 1}}
    assert header["modelspec.architecture"] == "ltx-2.3/lokr" and json.loads(header["ss_network_args"])["factor"] == 4
    assert header["modelspec.implementation"] == "diffusers" and header["modelspec.date"] == "2026-01-02T00:00:00+00:00"
    assert (header["num_frames"], header["fps"], header["resolution"]) == ("9,17", "24,12", "96x64,64x64")
    assert header["modelspec.resolution"] == "96x64" and (header["ss_num_train_images"], header["ss_steps"]) == ("3", "7")
    assert header["ss_num_reg_images"] == "2"


def test_diffusers_and_ltx_core_still_load_the_file_and_apply_the_trained_update(traced_tiny_run, tiny_model_dir, ltx_core):
    from diffusers import LTX2Pipeline
    from peft.tuners.lora import LoraLayer

    from extensions_built_in.diffusion_models.ltx2.lora_names import to_original_name
    from tests.network.test_network_loaders import ltx_core_patches

    path = traced_tiny_run / f"{traced_tiny_run.name}.safetensors"
    trained = load_file(str(traced_tiny_run / "checkpoints" / "step_000000012" / "lora.safetensors"))
    with safe_open(str(path), "pt") as handle:
        scale = float(handle.metadata()["trained_alpha"]) / int(handle.metadata()["trained_rank"])
    expected = {
        to_original_name(key.removeprefix("transformer.").removesuffix(".lora_A.weight")) + ".weight":
            scale * trained[key.replace("lora_A", "lora_B")] @ trained[key]
        for key in trained if key.endswith("lora_A.weight")
    }
    weights = load_file(str(tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors"))
    weights = {to_original_name(name): tensor for name, tensor in weights.items() if name.endswith(".weight")}

    fused, unmatched = ltx_core_patches(ltx_core, path, weights)
    pipeline = LTX2Pipeline.from_pretrained(tiny_model_dir)
    pipeline.load_lora_weights(str(path), adapter_name="trained")
    loaded = {
        to_original_name(f"{name}.weight"): module.get_delta_weight("trained").detach().float()
        for name, module in pipeline.transformer.named_modules() if isinstance(module, LoraLayer)
    }
    assert unmatched == [] and sorted(fused) == sorted(loaded) == sorted(expected)
    for name, delta in expected.items():  # the file is float16: the trained update to its precision
        torch.testing.assert_close(fused[name], delta, rtol=2e-3, atol=2e-5, msg=f"ltx-core: {name}")
        torch.testing.assert_close(loaded[name], delta, rtol=2e-3, atol=2e-5, msg=f"diffusers: {name}")
