"""Evaluation settings: what cannot work is a config error before anything loads; the noise levels follow the
training sampler; `validation_split` picks the same files every time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.conftest import DEMO_CLIPS, copy_clips, write_config
from toolkit.config import load_config
from toolkit.errors import ConfigError
from toolkit.preflight import check_before_loading


def _dataset(folder: Path, **keys) -> dict:
    return {"folder_path": str(folder), "num_frames": 9, "resolution": [64], **keys}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"train.eval_every": 10}, r"train\.eval_every: evaluation is on but no clips are held out"),
        ({"train.validation_split": 0.5}, r"train\.validation_split: validation_split holds clips out of training, but train\.eval_every is not set"),
        ({"save.keep_best": True}, r"save\.keep_best: keep_best keeps the LoRA with the lowest evaluation loss, but train\.eval_every is not set"),
        ({"datasets": [_dataset(DEMO_CLIPS)], "held_out": {}}, r"datasets\[1\]\.is_val: held-out clips are never trained on, but train\.eval_every is not set"),
        ({"train.eval_every": 10, "held_out": {"is_reg": True, "flip_x": True}}, r"datasets\[1\]: is_val: true with is_reg, flip_x: a held-out folder is only evaluated"),
        ({"train.eval_every": 10, "datasets": [_dataset(DEMO_CLIPS, is_val=True)]}, r"datasets: every dataset has is_val: true, so nothing is left to train on"),
        ({"train.eval_every": 10, "held_out": {"folder_path": str(DEMO_CLIPS)}}, r"datasets\[1\]\.folder_path: this is_val folder is also a training folder"),
        ({"train.eval_every": 10, "train.validation_split": 1.0}, r"train\.validation_split: 1\.0 is out of range \(must be < 1"),
    ],
)
def test_settings_that_cannot_work_are_config_errors(tmp_path, settings, expected):
    settings = dict(settings)
    held_out = settings.pop("held_out", None)
    if held_out is not None:
        clips = copy_clips(tmp_path / "held_out", 1)
        settings["datasets"] = [*settings.get("datasets", [_dataset(DEMO_CLIPS)]), _dataset(clips, is_val=True, **held_out)]
    with pytest.raises(ConfigError, match=expected):
        load_config(write_config(tmp_path, settings))


def test_a_validation_split_that_leaves_nothing_to_train_is_found_before_loading(tmp_path):
    one_clip = copy_clips(tmp_path / "one", 1)
    config = load_config(write_config(tmp_path, {"datasets.0.folder_path": str(one_clip), "train.eval_every": 10,
                                                 "train.validation_split": 0.1}))
    with pytest.raises(ConfigError, match=r"train\.validation_split: 0\.1 of the 1 training file\(s\) holds out 1 .* leaves nothing to train on"):
        check_before_loading(config)
    four = load_config(write_config(tmp_path, {"train.eval_every": 10, "train.validation_split": 0.9}))
    with pytest.raises(ConfigError, match="0.9 of the 4 training file.* holds out 4"):
        check_before_loading(four)
    check_before_loading(load_config(write_config(tmp_path, {"train.eval_every": 10, "train.validation_split": 0.5})))


def test_the_split_holds_out_the_same_files_from_the_training_folders_only(tmp_path):
    from toolkit.config import DatasetConfig
    from toolkit.data.held_out import held_out_count, split_off_files

    clips = copy_clips(tmp_path / "clips", 4)
    regularisation = copy_clips(tmp_path / "reg", 2)
    datasets = [DatasetConfig(folder_path=str(clips)), DatasetConfig(folder_path=str(regularisation), is_reg=True)]
    chosen = split_off_files(datasets, 0.5)
    assert len(chosen) == 2 and all(path.parent == clips.resolve() for path in chosen)  # never regularisation clips
    moved = shutil.copytree(clips, tmp_path / "elsewhere")
    assert split_off_files([datasets[1], DatasetConfig(folder_path=str(moved))], 0.5) == {moved.resolve() / p.name for p in chosen}
    assert split_off_files(datasets, None) == set()
    assert [held_out_count(0.1, n) for n in (0, 1, 4, 10, 16)] == [0, 1, 1, 1, 2]


def test_the_noise_levels_are_quantiles_of_the_training_sampler():
    import torch

    from extensions_built_in.sd_trainer.flow_matching import evaluation_sigmas

    quantiles = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    logit_normal = torch.sigmoid(torch.distributions.Normal(0.0, 1.0).icdf(quantiles)).flip(0)
    assert evaluation_sigmas(5, "sigmoid", "balanced", 3.0) == tuple(round(float(v), 2) for v in logit_normal)
    assert evaluation_sigmas(5, "linear", "balanced", 3.0) == (0.9, 0.7, 0.5, 0.3, 0.1)
    content = tuple(round(1 - (1 - q) ** 3, 2) for q in (0.9, 0.7, 0.5, 0.3, 0.1))  # 1 - u**3 of the way down
    assert evaluation_sigmas(5, "linear", "content", 3.0) == content
    shifted = evaluation_sigmas(5, "shift", "balanced", 3.0)  # 0.875 sits on a rounding edge: within one step
    assert shifted == pytest.approx([3 * s / (1 + 2 * s) for s in (0.9, 0.7, 0.5, 0.3, 0.1)], abs=0.0101)
    assert evaluation_sigmas(1, "sigmoid", "balanced", 3.0) == (0.5,)
