"""`datasets[].audio: false` trains the video only: the clip's audio is never read or encoded, no audio loss."""

from __future__ import annotations

import json

import torch

from tests.conftest import read_jsonl
from tests.trainer.conftest import copy_clips, set_up_trainer, train_steps, write_config
from toolkit.data.demo_clips import make_demo_clips


def test_audio_false_dataset_trains_video_only_beside_an_audio_dataset(tmp_path, tiny_ready):
    video_only = tmp_path / "video_only"
    make_demo_clips(video_only, count=2, num_frames=17, with_audio=False)  # no audio track, missing_audio: error
    with_audio = copy_clips(tmp_path / "with_audio", 2)
    config = write_config(
        tmp_path,
        {
            "datasets": [
                {"folder_path": str(video_only), "audio": False, "num_frames": 9, "resolution": [64]},
                {"folder_path": str(with_audio), "num_frames": 9, "resolution": [64]},
            ],
            "train.steps": 4,
            "model.verbose": True,
            "model.trace_every": 1,
        },
        name="video_only_test",
    )
    trainer = set_up_trainer(config)
    by_folder = {}
    for index, example in enumerate(trainer.data.examples):
        by_folder.setdefault(example.path.parent.name, []).append(index)
    assert all(not trainer.data.examples[i].train_audio for i in by_folder["video_only"])
    assert all(trainer.data.examples[i].train_audio for i in by_folder["with_audio"])
    audio_shape = trainer.data.examples[by_folder["with_audio"][0]].audio_latents.shape
    assert all(trainer.data.examples[i].audio_latents.shape == audio_shape for i in by_folder["video_only"])

    positions = {trainer.order.example_at(p): p for p in range(4)}
    video_only_position = positions[by_folder["video_only"][0]]
    loss, video_loss, audio_loss, _, _ = trainer.step_loss.compute([video_only_position], 0)
    assert audio_loss.item() == 0.0 and video_loss.item() > 0.0
    torch.testing.assert_close(loss, video_loss * trainer.config.train.video_loss_weight)
    mixed_audio_loss = trainer.step_loss.compute([video_only_position, positions[by_folder["with_audio"][0]]], 0).audio
    assert mixed_audio_loss.item() > 0.0  # the clip with audio still trains its audio
    train_steps(trainer, 1)

    records = read_jsonl(trainer.run_folder / "trace.jsonl")
    [off] = [r["fields"] for r in records if r["name"] == "dataset_audio_off"]
    assert off["folder"] == str(video_only) and off["clips"] == 2
    # the audio VAE ran once for the silence of the video-only clips' length and once for the two clips with
    # audio (small clips of one shape are encoded together)
    encodes = [r["fields"] for r in records if r["type"] == "span_begin" and r["name"] == "encode_audio"]
    assert [e["is_silence"] for e in encodes] == [[True], [False, False]]
    assert len([r for r in records if r["type"] == "span_begin" and r["name"] == "silence_latents"]) == 1
    loads = [r["fields"] for r in records if r["type"] == "span_end" and r["name"] == "load_media"]
    assert sorted(json.dumps(f["audio"]) == "null" for f in loads) == [False, False, True, True]
    predicted = [r["fields"]["audio_trained"] for r in records if r["type"] == "span_begin" and r["name"] == "predict_noise"]
    assert [False] in predicted and [False, True] in predicted
