"""EMA of the LoRA weights (diffusers' EMAModel): equal to an EMA computed by hand, saved beside the LoRA, resumed, sampled with."""

from __future__ import annotations

import pytest
import torch

from extensions_built_in.sd_trainer import checkpoints
from tests.trainer.conftest import lora_tensors, set_up_trainer, train_steps, write_config
from extensions_built_in.diffusion_models.ltx2.lora_names import LTX2_LORA_FILE_KEYS as KEYS
from toolkit.network.formats import load_lora_state

DECAY = 0.8
NAME = "ema_test"


def _ema_config(folder, **settings):
    return write_config(
        folder,
        {
            "train.ema_config": {"use_ema": True, "ema_decay": DECAY},
            "train.steps": 10,
            "train.lr": 1e-2,
            "save.dtype": "float32",
            **settings,
        },
        name=NAME,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache_dir):
    """A trainer after 3 steps, the LoRA weights before and after each step, then saved."""
    folder = tmp_path_factory.mktemp("ema")
    config = _ema_config(folder)
    trainer = set_up_trainer(config)
    weights = [lora_tensors(trainer)]
    for _ in range(3):
        train_steps(trainer, 1)
        weights.append(lora_tensors(trainer))
    trainer.save()
    return {"trainer": trainer, "weights": weights, "config": config}


def test_ema_equals_a_hand_computed_ema(trained):
    weights = trained["weights"]
    # diffusers' EMAModel: the first update takes the weights after step 1, later ones blend at DECAY.
    expected = {name: tensor.clone() for name, tensor in weights[1].items()}
    for after_step in weights[2:]:
        expected = {name: DECAY * expected[name] + (1 - DECAY) * after_step[name] for name in expected}
    ema = trained["trainer"].ema.state_dict()
    assert ema.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(ema[name], expected[name], rtol=1e-6, atol=1e-7)
    # Not the trained weights themselves: the LoRA B matrices have moved away from their average.
    assert any(not torch.allclose(ema[name], weights[-1][name]) for name in expected if "lora_B" in name)


def test_ema_is_saved_beside_the_lora_and_in_the_checkpoint(trained):
    trainer = trained["trainer"]
    ema = trainer.ema.state_dict()
    beside = trainer.run_folder / checkpoints.ema_filename(NAME, 3)
    assert beside.name == f"{NAME}_000000003_ema.safetensors"
    assert trainer.saved["ema"] == beside
    in_checkpoint = trainer.saved["checkpoint"] / checkpoints.EMA_CHECKPOINT_FILE
    for path in (beside, in_checkpoint):
        loaded = load_lora_state(path, keys=KEYS)
        assert loaded.keys() == ema.keys()
        for name in ema:
            torch.testing.assert_close(loaded[name], ema[name])
    # The trained LoRA file holds the trained weights, not the EMA.
    trained_file = load_lora_state(trainer.saved["lora"], keys=KEYS)
    for name, tensor in lora_tensors(trainer).items():
        torch.testing.assert_close(trained_file[name], tensor)


def test_resume_restores_the_ema_and_continues_it(trained):
    trainer = trained["trainer"]
    resumed = set_up_trainer(trained["config"])
    assert resumed.step == 3
    before = trainer.ema.state_dict()
    for name, tensor in resumed.ema.state_dict().items():
        torch.testing.assert_close(tensor, before[name])
    # One more step on each: the same weights, so the same EMA.
    train_steps(trainer, 1)
    train_steps(resumed, 1)
    continued, expected = resumed.ema.state_dict(), trainer.ema.state_dict()
    for name in expected:
        torch.testing.assert_close(continued[name], expected[name], rtol=1e-5, atol=1e-6)


def test_samples_use_the_ema_weights_and_training_gets_its_weights_back(trained):
    trainer = trained["trainer"]
    trained_weights = lora_tensors(trainer)
    ema = trainer.ema.state_dict()
    seen = {}

    def sample(step):
        seen.update(lora_tensors(trainer))
        return []

    trainer.sampler.sample = sample
    try:
        trainer._sample(trainer.step)
    finally:
        del trainer.sampler.sample
    for name in ema:
        torch.testing.assert_close(seen[name], ema[name])
    after = lora_tensors(trainer)
    assert all(torch.equal(after[name], trained_weights[name]) for name in trained_weights)


def test_final_save_writes_the_ema_lora(trained):
    trainer = trained["trainer"]
    trainer.save(final=True)
    final_ema = trainer.run_folder / f"{NAME}_ema.safetensors"
    assert trainer.saved["final_ema"] == final_ema
    loaded, ema = load_lora_state(final_ema, keys=KEYS), trainer.ema.state_dict()
    for name in ema:
        torch.testing.assert_close(loaded[name], ema[name])


def test_resume_from_a_save_without_ema_starts_the_ema_from_the_resumed_weights(tmp_path, tiny_cache_dir):
    plain = set_up_trainer(write_config(tmp_path, {"train.steps": 10, "train.lr": 1e-2, "save.dtype": "float32"}, name=NAME))
    train_steps(plain, 2)
    plain.save()
    resumed = set_up_trainer(_ema_config(tmp_path))
    assert resumed.step == 2
    log = (resumed.run_folder / "train.log").read_text()
    assert "holds no EMA weights" in log and "the EMA starts from the resumed LoRA weights" in log
    weights = lora_tensors(resumed)
    for name, tensor in resumed.ema.state_dict().items():
        torch.testing.assert_close(tensor, weights[name])
