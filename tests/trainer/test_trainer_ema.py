"""EMA of the LoRA weights: ai-toolkit's EMA computed by hand, saved as the LoRA (the trained weights beside it), resumed, sampled with."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

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


def test_ema_equals_ai_toolkits_ema_computed_by_hand(trained):
    weights = trained["weights"]
    # ai-toolkit's ExponentialMovingAverage: from the initial weights, update n blends at min(decay, (1+n)/(10+n)).
    expected = {name: tensor.clone() for name, tensor in weights[0].items()}
    for update, after_step in enumerate(weights[1:], start=1):
        decay = min(DECAY, (1 + update) / (10 + update))
        expected = {name: decay * expected[name] + (1 - decay) * after_step[name] for name in expected}
    ema = trained["trainer"].ema.state_dict()
    assert ema.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(ema[name], expected[name], rtol=1e-6, atol=1e-7)
    # Not the trained weights themselves: the LoRA B matrices have moved away from their average.
    assert any(not torch.allclose(ema[name], weights[-1][name]) for name in expected if "lora_B" in name)


def test_the_lora_file_holds_the_ema_and_the_trained_weights_lie_beside_it(trained):
    trainer = trained["trainer"]
    ema, weights = trainer.ema.state_dict(), lora_tensors(trainer)
    main, beside = trainer.run_folder / f"{NAME}_000000003.safetensors", trainer.run_folder / f"{NAME}_000000003_no_ema.safetensors"
    assert (trainer.saved["lora"], trainer.saved["no_ema"]) == (main, beside)
    assert beside.name == checkpoints.no_ema_filename(NAME, 3)
    checkpoint = trainer.saved["checkpoint"]
    for path, expected in ((main, ema), (checkpoint / checkpoints.EMA_CHECKPOINT_FILE, ema),
                           (beside, weights), (checkpoint / "lora.safetensors", weights)):
        loaded = load_lora_state(path, alpha=trainer.network.alpha, keys=KEYS)
        assert loaded.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(loaded[name], expected[name], msg=f"{path.name}: {name}")
    with safe_open(str(main), "pt") as handle, safe_open(str(beside), "pt") as other:
        assert (handle.metadata()["ema"], other.metadata()["ema"]) == ("True", "False")


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


def test_final_save_writes_the_ema_as_the_lora_and_the_trained_weights_beside_it(trained):
    trainer = trained["trainer"]
    trainer.save(final=True)
    assert trainer.saved["final"] == trainer.run_folder / f"{NAME}.safetensors"
    assert trainer.saved["final_no_ema"] == trainer.run_folder / f"{NAME}_no_ema.safetensors"
    for key, expected in (("final", trainer.ema.state_dict()), ("final_no_ema", lora_tensors(trainer))):
        loaded = load_lora_state(trainer.saved[key], alpha=trainer.network.alpha, keys=KEYS)
        for name in expected:
            torch.testing.assert_close(loaded[name], expected[name])


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
