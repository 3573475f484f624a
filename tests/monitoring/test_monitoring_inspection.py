"""Inspection on the tiny example: blocks at steps 0, 5, 10 whose values match the step's tensors; hooks gone after."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from extensions_built_in.sd_trainer.callbacks import StepDetails, TrainingCallback
from extensions_built_in.sd_trainer.flow_matching import add_noise, masked_mse, velocity_target
from extensions_built_in.sd_trainer.i2v import FirstFrameCondition
from extensions_built_in.sd_trainer.inspection_callback import InspectionCallback, outputs_block, rerun_blocks
from extensions_built_in.sd_trainer.SDTrainer import SDTrainer
from extensions_built_in.sd_trainer.tensorboard_callback import TensorBoardCallback
from tests.trainer.conftest import build_trainer, write_config
from extensions_built_in.diffusion_models.ltx2.attention_probes import cross_attention_modules
from toolkit.config import LoggingConfig
from toolkit.monitoring.attention_stats import AttentionProbe, ProbingProcessor
from toolkit.monitoring.inspection import audio_level, format_block, predicted_clean, relative_change
from toolkit.trace import reset_tracer

STEPS = 11
EVERY = 5
INSPECTED = [0, 5, 10]
KINDS = ("inputs", "outputs", "attention", "conditioning")
STREAMS = ("audio_to_video", "text_to_audio", "text_to_video", "video_to_audio")


class DetailsSpy(TrainingCallback):
    """Keeps the StepDetails the trainer hands out (it asks for none itself)."""

    def __init__(self):
        self.details = {}

    def on_step_end(self, trainer, step, result, details):
        if details is not None:
            self.details[step] = details


@pytest.fixture(scope="module")
def inspected_run(tiny_model_dir, tmp_path_factory):
    from toolkit.logging import LogManager

    folder = tmp_path_factory.mktemp("inspection")
    config = write_config(
        folder,
        {
            "train.steps": STEPS,
            "save.save_every": 100,
            "logging.inspect": True,
            "logging.inspect_every": EVERY,
            "logging.use_tensorboard": True,
            "logging.progress_bar": False,
            "model.verbose": True,
            "datasets.0.cache_latents_to_disk": False,
            "datasets.0.cache_text_embeddings": False,
            # The first 9 frames at 24 fps (0.375 s, 10 audio tokens), as the expectations below assume;
            # spread over the 17-frame clips (the default) they would keep real time at 12 fps.
            "datasets.0.shrink_video_to_frames": False,
        },
        name="inspect_run",
    )
    trainer = build_trainer(config)
    spy = DetailsSpy()
    trainer._build_callbacks = lambda: SDTrainer._build_callbacks(trainer) + [spy]
    reset_tracer()
    stdout = io.StringIO()  # the trace's console: it prints the inspection blocks (model.verbose is on)
    try:
        with contextlib.redirect_stdout(stdout):
            trainer.run()
    finally:
        reset_tracer()
        LogManager.get_instance().cleanup()
    run_folder = folder / "output" / "inspect_run"
    log = (run_folder / "train.log").read_text()
    return SimpleNamespace(trainer=trainer, spy=spy, folder=run_folder, log=log, stdout=stdout.getvalue())


def blocks(run, step: int) -> dict:
    return json.loads((run.folder / "inspection" / f"step_{step:06d}" / "inspection.json").read_text())


def test_blocks_appear_at_steps_0_5_10_on_console_trace_and_disk(inspected_run):
    run = inspected_run
    for kind in KINDS:
        # One printer: the trace's console prints each block (its tree under the event's line), the log has none.
        steps = [int(s) for s in re.findall(rf"\[VERBOSE\]\s+=== Inspection: {kind} - step (\d+) ===", run.stdout)]
        assert steps == INSPECTED, kind
        assert f"=== Inspection: {kind}" not in run.log
    header = r"=== Inspection: inputs - step 5 ===\n\[VERBOSE\]\s+Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n\[VERBOSE\]\s+├── clip: "
    assert re.search(header, run.stdout)
    assert sorted(p.name for p in (run.folder / "inspection").iterdir()) == ["step_000000", "step_000005", "step_000010"]
    assert sorted(run.spy.details) == INSPECTED  # the trainer kept the step's tensors only when inspecting
    assert "Latent encoding: 4 clips in " in run.log + run.stdout  # the caching report
    records = [json.loads(line) for line in (run.folder / "trace.jsonl").read_text().splitlines()]
    for kind in KINDS:
        assert [r["fields"]["step"] for r in records if r["name"] == f"inspection_{kind}"] == INSPECTED
    (outputs_5,) = [r for r in records if r["name"] == "inspection_outputs" and r["fields"]["step"] == 5]
    assert outputs_5["fields"]["video.mse"] == pytest.approx(blocks(run, 5)["outputs"]["video"]["mse"])


def test_output_values_match_the_steps_tensors(inspected_run):
    for step in INSPECTED:
        details = inspected_run.spy.details[step]
        outputs = blocks(inspected_run, step)["outputs"]
        for stream in ("video", "audio"):
            prediction = getattr(details, f"{stream}_prediction").float()
            target = getattr(details, f"{stream}_target").float()
            mask = details.video_loss_mask if stream == "video" else None
            block = outputs[stream]
            assert block["mse"] == pytest.approx(masked_mse(prediction, target, mask).item(), rel=1e-5)
            cosine = (prediction.flatten() @ target.flatten()) / (prediction.norm() * target.norm())
            assert block["cosine_similarity"] == pytest.approx(cosine.item(), rel=1e-4, abs=1e-6)
            assert block["prediction"]["first"] == pytest.approx(prediction.flatten()[:10].tolist())
            assert block["prediction"]["last"] == pytest.approx(prediction.flatten()[-10:].tolist())
            assert block["target"]["first"] == pytest.approx(target.flatten()[:10].tolist())
            assert block["target"]["last"] == pytest.approx(target.flatten()[-10:].tolist())
        sigma = details.sigmas.view(-1, 1, 1, 1, 1)
        clean_video = details.noisy_video - sigma * details.video_prediction
        assert outputs["predicted_clean"]["video_latents"]["mean"] == pytest.approx(clean_video.mean().item(), abs=1e-5)


def test_input_values_match_the_steps_tensors(inspected_run):
    from toolkit.data import read_video

    for step in INSPECTED:
        details = inspected_run.spy.details[step]
        inputs = blocks(inspected_run, step)["inputs"]
        assert inputs["caption"] == details.captions[0] and inputs["clip"] == details.paths[0]
        # The tiny tokenizer is byte-level: every character is kept, none truncated at max_length 128;
        # the special tokens are shown, as the model gets them.
        tokens = inputs["tokens"]
        assert tokens["decoded"] == "<bos>" + details.captions[0] and tokens["special_tokens"] == ["<bos>"]
        assert tokens["truncated"] is False and tokens["tokens_kept"] == len(details.captions[0].encode()) + 1
        assert tokens["padding_tokens"] == 128 - tokens["tokens_kept"]
        tokenizer = inspected_run.trainer.model.tokenizer
        assert tokens["input_ids_first_20"] == tokenizer(details.captions[0]).input_ids[:20]
        assert tokens["input_ids_first_20"][0] == tokenizer.bos_token_id
        assert inputs["latents"]["video"]["shape"] == list(details.video_latents.shape) == [1, 4, 2, 8, 8]
        assert inputs["latents"]["audio"]["mean"] == pytest.approx(details.audio_latents.mean().item(), abs=1e-6)
        assert inputs["prompt_embeds"]["video"]["shape"] == list(details.prompt["video"].shape)
        assert inputs["noise"]["sigma"] == pytest.approx(details.sigmas.tolist())
        assert inputs["noise"]["timestep"] == pytest.approx([1000 * s for s in details.sigmas.tolist()])
        assert inputs["fps"] == details.fps[0] and inputs["clip_fps"] == details.fps  # the first clip's, each clip's
        clip = read_video(details.paths[0], 9, fps=details.fps[0])
        rms = clip.audio.waveform.float().pow(2).mean().sqrt().item()
        assert inputs["audio_segment"]["seconds"] == pytest.approx(9 / details.fps[0], abs=0.01)
        assert inputs["audio_segment"]["rms_db"] == pytest.approx(20 * math.log10(rms), abs=1e-4)


def test_decoded_frame_and_audio_are_saved(inspected_run):
    media = blocks(inspected_run, 10)["outputs"]["predicted_clean"]
    with Image.open(media["frame_image"]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    with wave.open(media["audio_snippet"], "rb") as audio:
        assert audio.getframerate() == 16000
        assert audio.getnframes() / audio.getframerate() == pytest.approx(media["audio_seconds"])
        assert audio.getnframes() > 0


def test_attention_and_conditioning_blocks(inspected_run):
    data = blocks(inspected_run, 5)
    attention = data["attention"]
    assert sorted(attention) == [f"transformer_blocks.{b}.{d}" for b in (0, 1) for d in STREAMS]
    audio_to_video = attention["transformer_blocks.0.audio_to_video"]
    assert (audio_to_video["queries"], audio_to_video["keys"]) == (128, 10)  # video tokens attend to audio tokens
    text_to_audio = attention["transformer_blocks.0.text_to_audio"]
    assert (text_to_audio["queries"], text_to_audio["keys"]) == (10, 128)  # audio tokens attend to the prompt
    for stats in attention.values():
        assert 0 < stats["entropy"] <= math.log(stats["keys"]) + 1e-5
        assert 1 / stats["keys"] - 1e-6 <= stats["max_weight"] <= stats["peak_weight"] <= 1
    effect = data["conditioning"]["prompt_effect"]
    assert data["conditioning"]["caption_dropped"] == [False]
    assert effect["video"] > 0 and effect["audio"] > 0


def test_the_transformer_gets_its_own_processors_back(inspected_run):
    transformer = inspected_run.trainer.model.transformer
    assert len(cross_attention_modules(transformer)) == 8
    for module in transformer.modules():
        assert not isinstance(getattr(module, "processor", None), ProbingProcessor)
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_tensorboard_gets_the_inspection_category(inspected_run):
    guidance = {"scalars": 0, "images": 0, "audio": 0}
    events = EventAccumulator(str(inspected_run.folder / "tensorboard"), size_guidance=guidance)
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("16_Inspection/outputs/video/mse")] == INSPECTED
    assert [e.step for e in events.Scalars("16_Inspection/conditioning/prompt_effect/video")] == INSPECTED
    assert "16_Inspection/attention/transformer_blocks.1.video_to_audio/entropy" in tags["scalars"]
    assert "16_Inspection/attention/transformer_blocks.0.text_to_video/entropy" in tags["scalars"]
    assert "16_Inspection/outputs/predicted_frame" in tags["images"]
    assert "16_Inspection/outputs/predicted_audio" in tags["audio"]


def _tiny_inputs(tiny_model):
    generator = torch.Generator().manual_seed(0)
    video = tiny_model.encode_images(torch.rand(1, 3, 9, 64, 64, generator=generator) * 2 - 1).latents
    audio = tiny_model.encode_audio(torch.randn(1, 1, 6000, generator=generator) * 0.1, 16000).latents
    return video, audio, tiny_model.get_prompt_embeds(["a red square"])


def test_the_weights_from_the_seen_query_and_key_rebuild_each_modules_output(tiny_model):
    video, audio, prompt = _tiny_inputs(tiny_model)
    modules = cross_attention_modules(tiny_model.transformer)
    seen = {}

    def keep(name):
        return lambda call, hidden_states, output: seen.setdefault(name, (call, output))

    with torch.no_grad(), AttentionProbe(modules) as probe:
        for name, module in modules.items():  # a second wrapper on top of the probe's, to see the same calls
            module.set_processor(ProbingProcessor(module.processor, keep(name)))
        tiny_model.get_noise_prediction(video, audio, torch.tensor([0.5]), prompt, fps=24.0)
    assert sorted(seen) == sorted(modules) == sorted(probe.results)
    for name, module in modules.items():
        call, output = seen[name]
        weights = call.weights()
        rebuilt = module.to_out[0]((weights @ call.value.transpose(1, 2).float()).transpose(1, 2).flatten(2))
        torch.testing.assert_close(rebuilt, output.float(), rtol=1e-4, atol=1e-5)
        entropy = -(weights * weights.clamp(min=1e-12).log()).sum(-1).mean().item()
        stats = probe.results[name]
        assert stats.entropy == pytest.approx(entropy, rel=1e-4)
        assert stats.max_weight == pytest.approx(weights.max(-1).values.mean().item(), rel=1e-5)
        received = weights.sum(dim=(0, 1, 2))
        assert stats.share_on_top_key == pytest.approx((received.max() / received.sum()).item(), rel=1e-5)
    text_call = seen["transformer_blocks.0.text_to_video"][0]
    assert text_call.key.shape[1] == prompt["video"].shape[1] and text_call.mask is not None
    for module in modules.values():
        assert not isinstance(module.processor, ProbingProcessor)


def test_probe_puts_the_processors_back_when_the_forward_fails(tiny_model):
    module = tiny_model.transformer.transformer_blocks[0].audio_to_video_attn
    original = module.processor
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        with AttentionProbe({"a2v": module}):
            module(torch.zeros(1, 4, 3))
    assert module.processor is original


def test_inspection_is_a_callback_only_when_asked():
    def trainer(inspect: bool):
        logging = LoggingConfig(use_tensorboard=False, inspect=inspect, inspect_every=7)
        config = SimpleNamespace(logging=logging)
        return SimpleNamespace(config=config, ema=None, run_folder=Path("run"), logger=SimpleNamespace(tensorboard=None))

    # the metrics callback is always there: it feeds metrics.jsonl with or without TensorBoard
    assert [type(callback) for callback in SDTrainer._build_callbacks(trainer(False))] == [TensorBoardCallback]
    metrics, callback = SDTrainer._build_callbacks(trainer(True))
    assert isinstance(metrics, TensorBoardCallback)
    assert isinstance(callback, InspectionCallback)
    assert [step for step in range(22) if callback.wants_details(step)] == [0, 7, 14, 21]


def test_image_to_video_steps_get_the_first_frame_check_and_a_masked_loss(tiny_model, tmp_path):
    """A hand-made i2v step (first latent frame clean at noise level 0) through the callback's computations."""
    generator = torch.Generator().manual_seed(3)
    video = tiny_model.encode_images(torch.rand(1, 3, 9, 64, 64, generator=generator) * 2 - 1).latents
    audio = tiny_model.encode_audio(torch.randn(1, 1, 6000, generator=generator) * 0.1, 16000).latents
    prompt = tiny_model.get_prompt_embeds(["a red square"])
    empty = tiny_model.get_prompt_embeds([""]).to("cpu")
    condition = FirstFrameCondition.for_clips([True], video)
    sigmas = torch.tensor([0.6])
    noise_video, noise_audio = torch.randn(video.shape, generator=generator), torch.randn(audio.shape, generator=generator)
    noisy_video = condition.keep_clean(add_noise(video, noise_video, sigmas), video)
    noisy_audio = add_noise(audio, noise_audio, sigmas)
    with torch.no_grad():
        prediction = tiny_model.get_noise_prediction(
            noisy_video, noisy_audio, sigmas, prompt, fps=24.0, video_sigmas=condition.token_sigmas(sigmas)
        )
    details = StepDetails(
        step=3, captions=["a red square"], paths=["clip.mp4"], sigmas=sigmas, video_latents=video, audio_latents=audio,
        noisy_video=noisy_video, noisy_audio=noisy_audio, video_prediction=prediction.video,
        audio_prediction=prediction.audio, video_target=velocity_target(video, noise_video),
        audio_target=velocity_target(audio, noise_audio), prompt=prompt, fps=[24.0], video_loss_mask=condition.loss_mask,
    )
    trainer = SimpleNamespace(model=tiny_model, empty_prompt=empty, step_loss=SimpleNamespace(autocast=contextlib.nullcontext))
    with torch.no_grad():
        conditioning = rerun_blocks(trainer, details)["conditioning"]
        outputs = outputs_block(tiny_model, details, tmp_path)
    assert conditioning["first_frame_effect"]["video"] > 0 and conditioning["prompt_effect"]["video"] > 0
    expected = masked_mse(prediction.video, details.video_target, condition.loss_mask).item()
    assert outputs["video"]["mse"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(masked_mse(prediction.video, details.video_target).item(), rel=1e-3)
    # x0 keeps the clean condition frame: its noise level was 0, whatever the velocity there.
    clean = predicted_clean(noisy_video, prediction.video, sigmas.view(-1, 1, 1, 1, 1) * condition.loss_mask)
    torch.testing.assert_close(clean[:, :, 0], video[:, :, 0])
    assert outputs["predicted_clean"]["video_latents"]["mean"] == pytest.approx(clean.mean().item(), abs=1e-6)


def test_small_computations():
    tone = torch.sin(torch.arange(16000) / 16000 * 2 * math.pi * 440).unsqueeze(0) * 0.5
    level = audio_level(tone, 16000)
    assert level["seconds"] == 1.0
    assert level["rms_db"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert level["peak_db"] == pytest.approx(20 * math.log10(0.5), abs=0.01)
    assert audio_level(torch.zeros(1, 100), 16000)["rms_db"] == -120.0
    reference = torch.tensor([3.0, 4.0])
    assert relative_change(torch.tensor([3.0, 4.0]), reference) == 0
    assert relative_change(torch.tensor([3.0, 5.0]), reference) == pytest.approx(0.2)
    text = format_block("Inspection: outputs", 3, {"video": {"mse": 0.5, "note": "x"}, "fps": 24.0}, "2025-01-01 00:00:00")
    assert text.splitlines() == [
        "=== Inspection: outputs - step 3 ===",
        "Timestamp: 2025-01-01 00:00:00",
        "├── video",
        "│   ├── mse: 0.5",
        "│   └── note: x",
        "└── fps: 24",
    ]


@pytest.mark.parametrize("trace", ["off", "console", "files only"])
def test_each_block_is_printed_once(trace, tmp_path, capsys):
    from toolkit.trace import TraceConfig, get_tracer, init_tracer

    if trace != "off":
        init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=trace == "console", heartbeat_s=0))
    logged, metrics = [], []
    logger = SimpleNamespace(info=lambda fmt, text: logged.append(text), log_metrics=lambda m, step: metrics.append((step, m)))
    trainer = SimpleNamespace(tracer=get_tracer(), logger=logger)
    callback = InspectionCallback(5, tmp_path, SimpleNamespace(enabled=False))
    try:
        callback._report(trainer, 5, "outputs", {"video": {"mse": 0.25}}, "2026-01-01 00:00:00")
    finally:
        reset_tracer()
    printed = capsys.readouterr().out
    # the numbers go to the one metrics stream (metrics.jsonl, TensorBoard) at their step, whatever the trace does
    assert metrics == [(5, {"16_Inspection/outputs/video/mse": 0.25})]
    tree = "=== Inspection: outputs - step 5 ===\nTimestamp: 2026-01-01 00:00:00\n└── video: mse=0.25"
    if trace == "console":
        assert logged == [] and printed.count("=== Inspection: outputs - step 5 ===") == 1
        assert "[VERBOSE] inspection_outputs step=5 video.mse=0.25\n[VERBOSE]   === Inspection" in printed
    else:
        assert logged == [tree] and printed == ""
    if trace != "off":
        records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
        (event,) = [r for r in records if r["name"] == "inspection_outputs"]
        assert event["fields"] == {"step": 5, "video.mse": 0.25, "block": tree}
