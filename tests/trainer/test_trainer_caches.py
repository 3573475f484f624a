"""Latent and text-embedding caches: a second run encodes nothing; a changed clip or setting is encoded again."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.conftest import read_jsonl
from tests.trainer.conftest import DEMO_CLIPS, copy_clips, set_up_trainer, write_config


@pytest.fixture
def encode_calls(monkeypatch) -> Counter:
    """Counts the clips LTX2Model.encode_images / encode_audio encode (a batch of four counts four) and their
    calls (`<name> calls`), and get_prompt_embeds calls per prompt."""
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model

    calls: Counter = Counter()
    for name in ("encode_images", "encode_audio", "get_prompt_embeds"):
        original = getattr(LTX2Model, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1 if _name == "get_prompt_embeds" else args[0].shape[0]
            calls[f"{_name} calls"] += 1
            if _name == "get_prompt_embeds":
                calls.update(f"prompt:{prompt}" for prompt in args[0])
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(LTX2Model, name, counted)
    return calls


def _caption_calls(calls: Counter) -> int:
    return sum(count for key, count in calls.items() if key.startswith("prompt:") and key != "prompt:")


def test_caches_are_reused_and_invalidated(tmp_path, encode_calls):
    clips = copy_clips(tmp_path / "clips", 4)
    settings = {
        "datasets.0.folder_path": str(clips),
        "datasets.0.cache_latents_to_disk": True,
        "datasets.0.cache_text_embeddings": True,
        "train.steps": 1,
    }
    config = write_config(tmp_path, settings)

    first = set_up_trainer(config)
    assert (encode_calls["encode_images"], encode_calls["encode_audio"], _caption_calls(encode_calls)) == (4, 4, 4)
    # the four small clips share one shape: one call to each VAE
    assert (encode_calls["encode_images calls"], encode_calls["encode_audio calls"]) == (1, 1)
    assert (first.data.latent_cache_hits, first.data.text_cache_hits) == (0, 0)
    run_folder = first.run_folder
    assert len(list((run_folder / "latent_cache").glob("*.safetensors"))) == 4
    # the four captions, and the empty prompt caption dropout trains on
    assert len(list((run_folder / "text_embedding_cache").glob("*.safetensors"))) == 5

    encode_calls.clear()
    second = set_up_trainer(config)
    assert (encode_calls["encode_images"], encode_calls["encode_audio"], _caption_calls(encode_calls)) == (0, 0, 0)
    assert (second.data.latent_cache_hits, second.data.text_cache_hits) == (4, 4)
    for cached, encoded in zip(second.data.examples, first.data.examples):
        assert cached.path == encoded.path
        assert torch.equal(cached.video_latents, encoded.video_latents)
        assert torch.equal(cached.audio_latents, encoded.audio_latents)
        for name, tensor in encoded.prompt.as_tensors().items():
            assert torch.equal(cached.prompt.as_tensors()[name], tensor)

    touched = clips / "demo_02.mp4"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    encode_calls.clear()
    third = set_up_trainer(config)
    assert (encode_calls["encode_images"], encode_calls["encode_audio"], _caption_calls(encode_calls)) == (1, 1, 0)
    assert (third.data.latent_cache_hits, third.data.text_cache_hits) == (3, 4)
    assert len(list((run_folder / "latent_cache").glob("*.safetensors"))) == 4  # the stale entry was replaced

    encode_calls.clear()
    fourth = set_up_trainer(write_config(tmp_path, {**settings, "datasets.0.num_frames": 17}))
    assert (encode_calls["encode_images"], encode_calls["encode_audio"], _caption_calls(encode_calls)) == (4, 4, 0)
    assert (fourth.data.latent_cache_hits, fourth.data.text_cache_hits) == (0, 4)
    assert fourth.data.examples[0].video_latents.shape[1] == 3  # 17 frames: 1 + 16 / 8 latent frames
    assert first.data.examples[0].video_latents.shape[1] == 2


def test_batched_clips_match_their_one_by_one_encode_and_large_clips_go_alone(tmp_path, encode_calls, monkeypatch):
    from extensions_built_in.sd_trainer import clip_encoding

    clips = copy_clips(tmp_path / "clips", 3)
    batched = set_up_trainer(write_config(tmp_path / "batched", {"datasets.0.folder_path": str(clips), "train.steps": 1}))
    assert (encode_calls["encode_images"], encode_calls["encode_images calls"]) == (3, 1)

    encode_calls.clear()
    # 9 frames x 3 x 64 x 64 values a clip: a limit of two clips' values batches them in twos
    monkeypatch.setattr(clip_encoding, "BATCH_VALUES", 2 * 9 * 3 * 64 * 64)
    paired = set_up_trainer(write_config(tmp_path / "paired", {"datasets.0.folder_path": str(clips), "train.steps": 1}))
    assert (encode_calls["encode_images"], encode_calls["encode_images calls"]) == (3, 2)

    encode_calls.clear()
    monkeypatch.setattr(clip_encoding, "BATCH_VALUES", 1)  # every clip is larger than the limit: one at a time
    alone = set_up_trainer(write_config(tmp_path / "alone", {"datasets.0.folder_path": str(clips), "train.steps": 1}))
    assert (encode_calls["encode_images"], encode_calls["encode_images calls"], encode_calls["encode_audio calls"]) == (3, 3, 3)

    for run in (batched, paired):
        for together, single in zip(run.data.examples, alone.data.examples):
            assert together.path == single.path and together.fps == single.fps
            assert together.audio_is_silence == single.audio_is_silence
            # another convolution algorithm for another batch size: equal to float rounding, not bit for bit
            torch.testing.assert_close(together.video_latents, single.video_latents, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(together.audio_latents, single.audio_latents, rtol=1e-4, atol=1e-5)


def _cache_entries(run_folder) -> set[tuple[str, str]]:
    """(file name, variant) of every latent cache entry, as the entries record them."""
    from safetensors import safe_open

    entries = set()
    for entry in (run_folder / "latent_cache").glob("*.safetensors"):
        with safe_open(str(entry), "pt") as opened:
            metadata = opened.metadata()
        entries.add((Path(metadata["source"]).name, metadata["variant"]))
    return entries


def test_a_held_out_files_flipped_copy_is_never_encoded_and_the_rest_encode_as_before(tmp_path, encode_calls):
    """validation_split holds out one of two flip_x clips: its mirrored copy is neither trained nor evaluated, so it
    is not decoded, encoded or cached; the other three items encode as in a run without the split, whose cache
    this run then reads whole."""
    from toolkit.data.held_out import split_off_files

    clips = copy_clips(tmp_path / "clips", 2)
    dataset = {"folder_path": str(clips), "num_frames": 9, "resolution": [64], "flip_x": True,
               "cache_latents_to_disk": True}
    plain = {"datasets": [dataset], "train.steps": 1}
    split = {**plain, "train.validation_split": 0.5, "train.eval_every": 1}
    held_out = set_up_trainer(write_config(tmp_path / "split", {**split, "model.verbose": True}))
    (held_path,) = split_off_files(held_out.config.datasets, 0.5)
    (trained_path,) = {path.resolve() for path in clips.glob("*.mp4")} - {held_path}
    assert (encode_calls["encode_images"], encode_calls["encode_audio"]) == (3, 3)
    trained, evaluated = held_out.data.examples, held_out.data.held_out
    assert [(e.path.resolve(), e.flip_x) for e in trained] == [(trained_path, False), (trained_path, True)]
    assert [(e.path.resolve(), e.flip_x) for e in evaluated] == [(held_path, False)]
    cached = {(trained_path.name, ""), (trained_path.name, "flip_x"), (held_path.name, "")}
    assert _cache_entries(held_out.run_folder) == cached
    assert held_out.run_metadata["ss_num_train_images"] == "2"
    records = read_jsonl(held_out.run_folder / "trace.jsonl")
    (span,) = [r["fields"] for r in records if r["type"] == "span_begin" and r["name"] == "encode_dataset"]
    (report,) = [r["fields"] for r in records if r["name"] == "latent_caching_report"]
    assert (span["clips"], report["clips"]) == (3, 3)

    encode_calls.clear()
    everything = set_up_trainer(write_config(tmp_path / "everything", plain))
    assert encode_calls["encode_images"] == 4
    encoded = {(e.path.resolve(), e.flip_x): e for e in everything.data.examples}
    for example in [*trained, *evaluated]:
        same = encoded[(example.path.resolve(), example.flip_x)]
        # a batch of three, not four: equal to float rounding (another convolution algorithm), not bit for bit
        torch.testing.assert_close(example.video_latents, same.video_latents, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(example.audio_latents, same.audio_latents, rtol=1e-4, atol=1e-5)

    encode_calls.clear()
    rerun = set_up_trainer(write_config(tmp_path / "everything", split))  # the split's run over the full cache
    assert encode_calls["encode_images"] == 0 and rerun.data.latent_cache_hits == 3
    for example in [*rerun.data.examples, *rerun.data.held_out]:
        assert torch.equal(example.video_latents, encoded[(example.path.resolve(), example.flip_x)].video_latents)


def test_a_held_out_file_is_evaluated_on_its_caption_as_written_and_encodes_no_repeat(tmp_path, encode_calls):
    """With num_repeats and shuffle_tokens, a training file gives a shuffled caption per repeat; a held-out file
    gives one example, its caption as the file has it, and the text encoder sees no shuffled copy of it."""
    from toolkit.data.held_out import split_off_files

    clips = copy_clips(tmp_path / "clips", 2)
    dataset = {"folder_path": str(clips), "num_frames": 9, "resolution": [64], "num_repeats": 3, "shuffle_tokens": True}
    trainer = set_up_trainer(write_config(tmp_path / "run", {"datasets": [dataset], "train.steps": 1,
                                                               "train.validation_split": 0.5, "train.eval_every": 1}))
    (held_path,) = split_off_files(trainer.config.datasets, 0.5)
    written = held_path.with_suffix(".txt").read_text().strip()
    (evaluated,) = trainer.data.held_out
    assert (evaluated.path.resolve(), evaluated.caption) == (held_path, written)
    assert len(trainer.data.examples) == 3 and all(e.path.resolve() != held_path for e in trainer.data.examples)
    encoded_prompts = {key.removeprefix("prompt:") for key in encode_calls if key.startswith("prompt:")}
    assert written in encoded_prompts
    assert {p for p in encoded_prompts if sorted(p.split(", ")) == sorted(written.split(", "))} == {written}


def test_held_out_copies_are_the_flipped_items_of_held_out_files_and_of_is_val_datasets():
    """The rule split_held_out holds out by: a file validation_split chose, or any file of an is_val dataset (whose
    config refuses flips today, so only the first case leaves items out of a run)."""
    from types import SimpleNamespace

    from extensions_built_in.sd_trainer.training_data import held_out_copies
    from toolkit.data.dataset import MediaDataset

    dataset = MediaDataset(DEMO_CLIPS, num_frames=9, resolutions=[64], flip_x=True, flip_y=True)
    training, is_val = SimpleNamespace(is_val=False), SimpleNamespace(is_val=True)

    def described(items: set[int]) -> set[tuple[str, str]]:
        return {(dataset.planned(item).path.name, dataset.planned(item).flips) for item in items}

    flips = {"flip_x", "flip_y", "flip_x+flip_y"}
    held_out_file = (DEMO_CLIPS / "demo_01.mp4").resolve()
    assert described(held_out_copies(dataset, training, {held_out_file})) == {("demo_01.mp4", f) for f in flips}
    assert described(held_out_copies(dataset, is_val, ())) == {(path.name, f) for path in dataset.paths for f in flips}
    assert held_out_copies(dataset, training, ()) == set()
