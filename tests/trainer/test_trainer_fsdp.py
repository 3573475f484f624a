"""Two CPU processes (gloo) under `accelerate launch --config_file config/accelerate/fsdp.yaml`: the
transformer's base weights sharded with FSDP, one LoRA trained, equal to the one a single process trains
with the doubled batch; an FSDP launch refuses what cannot be sharded before anything loads."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import REPO_ROOT, build_trainer, copy_clips, lora_tensors, write_config
from tests.trainer.test_trainer_data_parallel import _files, _launch

NAME = "fsdp"
FSDP_LAUNCH = [
    sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO_ROOT / "config" / "accelerate" / "fsdp.yaml"),
    "--num_processes", "2", "--main_process_port", "0",
]
SETTINGS = {
    "train.steps": 3,
    "train.batch_size": 1,
    "train.gradient_accumulation": 2,
    "train.lr": 1e-2,
    "save.dtype": "float32",
    "save.save_every": 2,
    "model.quantize": False,
    "model.verbose": True,
}


@pytest.mark.slow
def test_fsdp_trains_the_lora_of_one_process_with_the_doubled_batch(tmp_path, tiny_ready):
    clips = copy_clips(tmp_path / "clips", 4)
    config = write_config(tmp_path / "two", {**SETTINGS, "datasets.0.folder_path": str(clips)}, name=NAME)
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    process = _launch(config, probe_dir, tmp_path / "fsdp.log", launch=FSDP_LAUNCH)
    process.wait(timeout=1800)
    output = (tmp_path / "fsdp.log").read_text()
    assert process.returncode == 0, output
    fsdp_lines = [line for line in output.splitlines() if line.startswith("[VERBOSE]   fsdp ")]
    assert len(fsdp_lines) == 1 and "wrapped_blocks=2 block_classes=[LTX2VideoTransformerBlock]" in fsdp_lines[0]
    assert "sharding_strategy=FULL_SHARD" in fsdp_lines[0] and "processes=2" in fsdp_lines[0]

    ranks = [load_file(str(probe_dir / f"rank{rank}.safetensors")) for rank in (0, 1)]
    single = build_trainer(
        write_config(tmp_path / "one", {**SETTINGS, "train.batch_size": 2,
                                        "datasets.0.folder_path": str(clips)}, name=NAME)
    )
    single.run()
    expected = lora_tensors(single)
    assert expected.keys() == ranks[0].keys() == ranks[1].keys() and len(expected) > 0
    for key, tensor in expected.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], tensor, rtol=1e-4, atol=1e-5)  # float sums in another order
    saved = load_file(str(tmp_path / "two" / "output" / NAME / f"{NAME}.safetensors"))
    final = load_file(str(tmp_path / "one" / "output" / NAME / f"{NAME}.safetensors"))
    assert saved.keys() == final.keys()
    for key in final:
        torch.testing.assert_close(saved[key], final[key], rtol=1e-4, atol=1e-5)
    assert _files(tmp_path / "two" / "output" / NAME) == _files(tmp_path / "one" / "output" / NAME)  # one set of files


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model.quantize": True}, "model.quantize is on under an FSDP launch: optimum-quanto"),
        ({"model.quantize": False, "model.layer_offloading": True}, "model.layer_offloading is on under an FSDP launch"),
        ({"model.quantize": False, "train.disable_sampling": False, "sample.prompts": ["a red square"]},
         "sampling during training is not done with a sharded transformer.*generate process"),
    ],
)
def test_an_fsdp_launch_refuses_what_cannot_be_sharded(tmp_path, settings, message):
    from extensions_built_in.sd_trainer.sharded_training import check_fsdp_run
    from toolkit.errors import ConfigError

    trainer = build_trainer(write_config(tmp_path, settings))
    with pytest.raises(ConfigError, match=message):
        check_fsdp_run(trainer.config)
    check_fsdp_run(build_trainer(write_config(tmp_path / "ok", {"model.quantize": False})).config)  # the tiny example, unquantized
