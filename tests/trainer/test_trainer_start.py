"""What a run does before its first step, made shorter without changing what it trains.

With the caches filled, a rerun decodes no clip (a latent cache entry is found from the file and the dataset's
plan) and never reads the text encoder (every prompt, the empty one included, comes from the text cache), and it
trains the LoRA, bit for bit, that a run without caches trains.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch

from tests.trainer.conftest import build_trainer, copy_clips, lora_tensors, set_up_trainer, train_steps, write_config
from toolkit.errors import DataError


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """Clips decoded (`read_video`) and components read (`load_one`), by name."""
    from extensions_built_in.diffusion_models.ltx2 import loading
    from toolkit.data import dataset

    counts: Counter = Counter()
    read_video, load_one = dataset.read_video, loading.load_one

    def counted_read(path, *args, **kwargs):
        counts["clips"] += 1
        return read_video(path, *args, **kwargs)

    def counted_load(model, name):
        counts[name] += 1
        return load_one(model, name)

    monkeypatch.setattr(dataset, "read_video", counted_read)
    monkeypatch.setattr(loading, "load_one", counted_load)
    return counts


def _trained(config) -> dict[str, torch.Tensor]:
    trainer = set_up_trainer(config)
    train_steps(trainer, 2)
    return lora_tensors(trainer)


def test_a_rerun_decodes_no_clip_reads_no_text_encoder_and_trains_the_same_lora(tmp_path, reads):
    clips = copy_clips(tmp_path / "clips", 2)
    caches = {"datasets.0.cache_latents_to_disk": True, "datasets.0.cache_text_embeddings": True}
    no_caches = {key: False for key in caches}
    settings = {"datasets.0.folder_path": str(clips), "train.steps": 2}

    uncached = _trained(write_config(tmp_path / "uncached", {**settings, **no_caches}))
    assert (reads["clips"], reads["text_encoder"]) == (2, 1)

    config = write_config(tmp_path / "cached", {**settings, **caches})
    reads.clear()
    first = _trained(config)
    assert (reads["clips"], reads["text_encoder"]) == (2, 1)  # read at the first caption the cache lacked

    reads.clear()
    rerun = _trained(config)
    assert (reads["clips"], reads["text_encoder"], reads["transformer"]) == (0, 0, 1)

    assert uncached.keys() == first.keys() == rerun.keys() and any("lora_A" in name for name in uncached)
    for name, tensor in uncached.items():
        assert torch.equal(first[name], tensor), name
        assert torch.equal(rerun[name], tensor), name


def _silent_clip(folder):
    from toolkit.data.demo_clips import MOTIONS, SHAPE_STYLES, render_frames
    from toolkit.data.media import AudioTrack
    from toolkit.data.video_writer import write_video

    folder.mkdir(parents=True)
    frames = render_frames(SHAPE_STYLES[0], MOTIONS[0], num_frames=9, size=64, background=32, offset=0.0)
    write_video(folder / "quiet.mp4", frames, 24, AudioTrack(torch.zeros(1, int(9 / 24 * 16000)), 16000))
    (folder / "quiet.txt").write_text("a quiet clip")
    return folder / "quiet.mp4"


def test_the_silent_track_rule_holds_for_a_clip_read_from_the_latent_cache(tmp_path, tiny_model, reads, caplog):
    """The first run trained the silent track as silence; a rerun that now says `missing_audio: error` stops on
    that clip as a run that decodes it does, although the cache spares the decode."""
    from extensions_built_in.sd_trainer.training_data import encode_datasets, open_datasets

    clip = _silent_clip(tmp_path / "clips")
    run_folder = tmp_path / "run"

    def encode(missing_audio: str):
        settings = {"datasets.0.folder_path": str(clip.parent), "datasets.0.missing_audio": missing_audio}
        datasets = build_trainer(write_config(tmp_path, {**settings, "datasets.0.cache_latents_to_disk": True})).config.datasets
        opened = open_datasets(datasets, tiny_model.audio_sample_rate, 42, tiny_model.rules)
        return encode_datasets(tiny_model, opened, datasets, run_folder, caption_transform=lambda caption: caption)

    logging.getLogger("ltx2_trace").addHandler(caplog.handler)
    with caplog.at_level(logging.WARNING, logger="ltx2_trace"):
        first = encode("silence")
        assert (reads["clips"], first.latent_cache_hits, first.examples[0].audio_is_silence) == (1, 0, True)
        caplog.clear()
        again = encode("silence")
    assert (reads["clips"], again.latent_cache_hits, again.examples[0].audio_is_silence) == (1, 1, True)
    assert torch.equal(again.examples[0].audio_latents, first.examples[0].audio_latents)
    assert any(f"{clip}: the audio track is silent" in record.getMessage() for record in caplog.records)
    with pytest.raises(DataError, match=f"^{clip}: the audio track is silent .*set missing_audio: silence"):
        encode("error")
    assert reads["clips"] == 1  # found in the cache, not decoded


@pytest.mark.parametrize("plan", ["made", "unreadable"])
def test_a_new_run_checks_its_disk_once_before_loading_else_once_the_lora_is_attached(plan, tmp_path, monkeypatch, caplog):
    """The memory plan sizes the LoRA from the checkpoint's configs, so the disk is checked before loading; a plan
    that cannot be made here stops nothing: the check waits for the attached LoRA."""
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from extensions_built_in.sd_trainer import save_space
    from toolkit import dry_run
    from toolkit.memory_management import MemoryPlanError

    events: list = []
    check_room, load_model = save_space.check_room, LTX2Model.load_model

    def checked(*args, lora_params=None, **kwargs):
        events.append(("disk checked", lora_params))
        return check_room(*args, lora_params=lora_params, **kwargs)

    def loaded(self, *args, **kwargs):
        events.append(("model loaded", None))
        return load_model(self, *args, **kwargs)

    def unreadable(model_config, network_config):
        raise MemoryPlanError("memory plan: /models/ltx has no model_index.json")

    monkeypatch.setattr(save_space, "check_room", checked)
    monkeypatch.setattr(LTX2Model, "load_model", loaded)
    if plan == "unreadable":
        monkeypatch.setattr(dry_run, "planned_lora", unreadable)
    logging.getLogger("ltx2_trace").addHandler(caplog.handler)
    with caplog.at_level(logging.INFO, logger="ltx2_trace"):
        trainer = set_up_trainer(write_config(tmp_path, {"train.steps": 2}))
    lora_params = trainer.network.num_parameters
    if plan == "made":
        assert events == [("disk checked", lora_params), ("model loaded", None)]
    else:
        assert events == [("model loaded", None), ("disk checked", lora_params)]
        assert (
            "Free space for the saves is checked once the LoRA is attached: the memory plan cannot size it before "
            "loading (MemoryPlanError: memory plan: /models/ltx has no model_index.json)"
        ) in caplog.text
