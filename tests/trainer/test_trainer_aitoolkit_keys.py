"""ai-toolkit's dataset and training keys in the trainer, on the tiny model: flipped latents, repeats,
regularisation clips at their network_weight, prodigy, model.compile, first-sample and start-step rules."""

from __future__ import annotations

import pytest
import torch

from extensions_built_in.sd_trainer.sampling import first_sample_due, sample_due
from extensions_built_in.sd_trainer.training_data import encode_datasets, open_datasets
from tests.trainer.conftest import build_trainer, copy_clips, set_up_trainer, write_config
from toolkit.data.dataset import MediaDataset
from toolkit.errors import ConfigError
from toolkit.network.lora import ADAPTER_NAME


def _folders(tmp_path):
    training = copy_clips(tmp_path / "training", 2)  # demo_00, demo_01
    regularisation = copy_clips(tmp_path / "regularisation", 3)
    for stale in ("demo_00", "demo_01"):
        (regularisation / f"{stale}.mp4").unlink()
        (regularisation / f"{stale}.txt").unlink()
    return training, regularisation


def _first_lora_scaling(transformer) -> float:
    for module in transformer.modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and ADAPTER_NAME in scaling:
            return scaling[ADAPTER_NAME]
    raise AssertionError("no LoRA layer in the transformer")


def test_dataset_and_training_keys_in_one_run(tmp_path, monkeypatch):
    compiled = []

    def recording_compile(function, *args, **kwargs):  # wiring only: compiling for real takes minutes on a CPU
        compiled.append(function)
        return function

    monkeypatch.setattr(torch, "compile", recording_compile)
    training, regularisation = _folders(tmp_path)
    config = write_config(
        tmp_path,
        {
            "datasets": [
                {"folder_path": str(training), "num_frames": 9, "resolution": [64], "flip_x": True, "num_repeats": 3,
                 "cache_latents_to_disk": True, "cache_text_embeddings": True},
                {"folder_path": str(regularisation), "num_frames": 9, "resolution": [64], "is_reg": True,
                 "network_weight": 0.5, "cache_latents_to_disk": True, "cache_text_embeddings": True},
            ],
            "train.steps": 2,
            "train.optimizer": "prodigy",
            "train.lr": 1.0,
            "train.optimizer_params": {"d_coef": 2.0},
            "train.lr_scheduler": "cosine",
            "train.loss_type": "mae",
            "train.timestep_type": "weighted",
            "train.content_or_style": "content",
            "model.compile": True,
        },
    )
    trainer = set_up_trainer(config)
    examples = trainer.data.examples

    # num_repeats 3 and flip_x: 2 clips x 2 versions x 3 repeats, then the regularisation clip.
    assert len(examples) == 13 and trainer.order.count == 12
    assert sum(e.flip_x for e in examples) == 6 and [e.path.name for e in examples if e.is_reg] == ["demo_02.mp4"]
    assert {e.network_weight for e in examples if e.is_reg} == {0.5} and {e.network_weight for e in examples[:12]} == {1.0}

    # flip_x: the mirrored copy trains on the latents of the mirrored frames.
    item = MediaDataset(training, num_frames=9, resolutions=[64], shrink_video_to_frames=True)[0]
    mirrored = trainer.model.encode_images(item.video.flip(-1).unsqueeze(0)).latents[0].cpu()
    plain, flipped = (next(e for e in examples if e.path == item.path and e.flip_x is f) for f in (False, True))
    assert torch.allclose(flipped.video_latents, mirrored, atol=1e-5)
    assert not torch.allclose(plain.video_latents, mirrored, atol=1e-3)
    repeat = examples[examples.index(plain) + 1]  # repeats share one encoding
    assert repeat.path == plain.path and repeat.video_latents.data_ptr() == plain.video_latents.data_ptr()

    # The cache keeps both versions of a clip: encoding again reads all five entries.
    assert len(list((trainer.run_folder / "latent_cache").glob("*.safetensors"))) == 5
    datasets = open_datasets(trainer.config.datasets, trainer.model.audio_sample_rate, 42, trainer.model.rules)
    again = encode_datasets(trainer.model, datasets, trainer.config.datasets, trainer.run_folder, lambda text: text)
    assert again.latent_cache_hits == 5

    # Step 0 draws the regularisation clip at network_weight 0.5, step 1 training clips at full strength.
    seen = []
    predict = trainer.model.get_noise_prediction

    def recording_predict(video, audio, sigmas, prompt, fps, video_sigmas=None):
        seen.append((_first_lora_scaling(trainer.model.transformer), sigmas.tolist()))
        return predict(video, audio, sigmas, prompt, fps=fps, video_sigmas=video_sigmas)

    trainer.model.get_noise_prediction = recording_predict
    alpha_over_rank = trainer.network.alpha / trainer.network.rank
    results = [trainer.hook_train_loop(step) for step in range(2)]
    assert [scale for scale, _ in seen] == [0.5 * alpha_over_rank, alpha_over_rank]
    assert _first_lora_scaling(trainer.model.transformer) == alpha_over_rank
    assert all(torch.isfinite(torch.tensor(r.loss)) and r.loss > 0 for r in results)

    assert type(trainer.optimizer).__name__ == "Prodigy" and trainer.optimizer.param_groups[0]["d_coef"] == 2.0
    assert compiled and trainer.model.transformer._compiled_call_impl is not None


def test_first_sample_and_sample_start_step(tmp_path):
    def due(settings, step):
        config = build_trainer(write_config(tmp_path, {"train.disable_sampling": False, **settings})).config
        first = first_sample_due(step, config.train, config.sample)
        return first, [after for after in range(1, 7) if sample_due(after, config.train, config.sample)]

    base = {"sample.sample_every": 2, "train.steps": 6}
    assert due(base, 0) == (True, [2, 4, 6])
    assert due(base, 4) == (False, [2, 4, 6])  # resumed: no baseline sample
    assert due({**base, "train.force_first_sample": True}, 4)[0] is True
    assert due({**base, "train.skip_first_sample": True}, 0)[0] is False
    # ai-toolkit checks skip_first_sample first: it wins over force_first_sample.
    assert due({**base, "train.skip_first_sample": True, "train.force_first_sample": True}, 0)[0] is False
    assert due({**base, "sample.sample_start_step": 3}, 0) == (False, [4, 6])


def test_only_regularisation_datasets_fail_before_the_model_loads(tmp_path):
    training, _ = _folders(tmp_path)
    config = write_config(tmp_path, {"datasets.0.folder_path": str(training), "datasets.0.is_reg": True})
    trainer = build_trainer(config)
    trainer._load_model = lambda: pytest.fail("the model was loaded before the config error")
    with pytest.raises(ConfigError, match="every dataset has is_reg: true"):
        trainer.run()
