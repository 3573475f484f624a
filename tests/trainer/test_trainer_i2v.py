"""Image-to-video: the first latent frame as a clean condition in training, control images in sampling,
and the i2v tiny example's [VERBOSE] lines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extensions_built_in.diffusion_models.ltx2.LTX2Model import GenerationSettings
from extensions_built_in.diffusion_models.ltx2.generation import load_control_image, run_pipeline
from extensions_built_in.sd_trainer.sampling import TrainingSampler
from tests.trainer.conftest import REPO_ROOT, RecordedPredictions, set_up_trainer, write_config
from toolkit.config import SampleConfig, SamplePrompt
from toolkit.errors import ConfigError
from toolkit.trace import TraceConfig, init_tracer, reset_tracer

I2V_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_i2v_tiny.yaml"
CONTROL_IMAGE = REPO_ROOT / "data" / "ctrl_images" / "demo_00_first_frame.png"
OTHER_IMAGE_CLIP = REPO_ROOT / "data" / "demo_clips" / "demo_02.mp4"


@pytest.fixture(scope="module")
def i2v_trainer(tmp_path_factory, tiny_cache_dir):
    folder = tmp_path_factory.mktemp("i2v")
    trainer = set_up_trainer(write_config(folder, {"train.i2v": True, "train.steps": 4}, name="i2v"))
    trainer.recorded = RecordedPredictions(trainer.model)
    return trainer


def test_first_frame_is_a_clean_condition_left_out_of_the_loss(i2v_trainer):
    trainer = i2v_trainer
    position = 5
    members = [(position, trainer.data.examples[trainer.order.example_at(position)])]
    video_loss, audio_loss, aux = trainer.step_loss.group_loss(members, step=1, keep_details=True)
    details, call = trainer.step_loss.last_details, trainer.recorded.calls[-1]
    _, _, frames, height, width = details.video_latents.shape
    first_frame_tokens = height * width
    sigma = details.sigmas[0].item()
    assert 0.0 < sigma < 1.0 and frames > 1

    # Timesteps: 0 on the first latent frame's tokens, the clip's sigma on every other token.
    video_sigmas = call["video_sigmas"]
    assert video_sigmas.shape == (1, frames * height * width)
    assert torch.all(video_sigmas[0, :first_frame_tokens] == 0)
    assert torch.allclose(video_sigmas[0, first_frame_tokens:], torch.full((frames * height * width - first_frame_tokens,), sigma))

    # Loss mask: 0 on the condition frame, 1 elsewhere.
    mask = details.video_loss_mask
    assert mask.shape == (1, 1, frames, height, width)
    assert torch.all(mask[:, :, 0] == 0) and torch.all(mask[:, :, 1:] == 1)

    # Latents: the condition frame is the clean latents bit for bit; the rest are noised as usual.
    clean, noisy = details.video_latents, details.noisy_video
    noise = details.video_target + clean  # target = noise - clean
    assert torch.equal(noisy[:, :, 0], clean[:, :, 0])
    assert torch.allclose(noisy[:, :, 1:], (1 - sigma) * clean[:, :, 1:] + sigma * noise[:, :, 1:], atol=1e-6)
    assert not torch.allclose(noisy[:, :, 1:], clean[:, :, 1:], atol=1e-2)
    assert torch.equal(call["noisy_video"], noisy)

    # The video loss is the MSE over the other frames only, by hand.
    by_hand = ((details.video_prediction[:, :, 1:] - details.video_target[:, :, 1:]) ** 2).mean()
    assert video_loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    everything = ((details.video_prediction - details.video_target) ** 2).mean()
    assert video_loss.item() != pytest.approx(everything.item(), rel=1e-3)

    # Audio is trained as in text-to-video: fully noised, fully in the loss.
    audio_noise = details.audio_target + details.audio_latents
    assert torch.allclose(details.noisy_audio, (1 - sigma) * details.audio_latents + sigma * audio_noise, atol=1e-6)
    assert audio_loss.item() == pytest.approx(((details.audio_prediction - details.audio_target) ** 2).mean().item(), rel=1e-6)
    assert aux == {}


def test_i2v_probability_is_drawn_per_clip_from_seed_and_position(i2v_trainer):
    trainer = i2v_trainer
    original = trainer.config.train.i2v
    trainer.config.train.i2v = 0.5
    try:
        decisions = []
        for _ in range(2):
            row = []
            for position in range(12):
                members = [(position, trainer.data.examples[trainer.order.example_at(position)])]
                trainer.step_loss.group_loss(members, step=0)
                row.append(trainer.recorded.calls[-1]["video_sigmas"] is not None)
            decisions.append(row)
    finally:
        trainer.config.train.i2v = original
    assert decisions[0] == decisions[1]  # the same clip position always gets the same choice
    assert 0 < sum(decisions[0]) < 12  # and a probability of 0.5 gives both kinds


def test_control_image_is_scaled_to_cover_and_center_cropped(tmp_path):
    # 96x48: a red left third, a green middle third, a blue right third.
    pixels = np.zeros((48, 96, 3), dtype=np.uint8)
    pixels[:, :32, 0] = pixels[:, 32:64, 1] = pixels[:, 64:, 2] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)

    image, before = load_control_image(path, width=64, height=64)
    assert before == (96, 48) and image.size == (64, 64)
    cropped = np.asarray(image).astype(int)
    # Scaled to 128x64 and center-cropped: 32 px of the middle third fill the centre, left/right edges keep red/blue.
    assert cropped[:, 24:40, 1].min() > 240 and cropped[:, 24:40, [0, 2]].max() < 15
    assert cropped[:, :4, 0].min() > 240 and cropped[:, -4:, 2].min() > 240


def test_inline_ctrl_img_form_and_a_missing_image(tmp_path, tiny_model):
    entry = SamplePrompt.model_validate(f"a red square --ctrl_img {CONTROL_IMAGE}")
    assert entry.prompt == "a red square" and entry.ctrl_img == str(CONTROL_IMAGE)
    config = SampleConfig(prompts=[{"prompt": "a red square", "ctrl_img": str(tmp_path / "missing.png")}], guidance_scale=1.0)
    with pytest.raises(ConfigError, match=r"sample.prompts\[0\].ctrl_img: .*missing.png is not a file"):
        TrainingSampler(tiny_model, config, tmp_path).encode_prompts()


def test_image_and_text_prompts_sample_through_their_own_pipelines(tmp_path, tiny_model):
    config = SampleConfig(
        prompts=[
            {"prompt": "a red square moving left to right", "ctrl_img": str(CONTROL_IMAGE)},
            "a blue circle moving top to bottom",
        ],
        width=64, height=32, num_frames=9, sample_steps=2, guidance_scale=1.0,
    )
    reset_tracer()
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path / "trace", console=False, heartbeat_s=0))
    try:
        sampler = TrainingSampler(tiny_model, config, tmp_path)
        sampler.encode_prompts()
        paths = sampler.sample(3)
    finally:
        reset_tracer()
    assert [p.name for p in paths] == ["000000003_0.mp4", "000000003_1.mp4"] and all(p.stat().st_size > 0 for p in paths)
    records = [json.loads(line) for line in (tmp_path / "trace" / "trace.jsonl").read_text().splitlines()]
    generated = [r["fields"] for r in records if r["name"] == "generate_single_image" and r["type"] == "span_begin"]
    assert [g["pipeline"] for g in generated] == ["LTX2ImageToVideoPipeline", "LTX2Pipeline"]
    assert "control image" in generated[0]["pipeline_reason"] and "text-only" in generated[1]["pipeline_reason"]
    (control,) = [r["fields"] for r in records if r["name"] == "control_image"]
    assert control["size_before"] == [64, 64] and control["size_after"] == [64, 32]


def _vae_reconstruction(model, image: Image.Image) -> np.ndarray:
    """What the tiny (random) VAE makes of an image: the most any latent conditioning can give back."""
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 127.5 - 1
    with torch.no_grad():
        latents = model.vae.encode(pixels[None, :, None]).latent_dist.mode()
        decoded = model.vae.decode(latents, None, return_dict=False)[0][0, :, 0]
    return ((decoded.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().numpy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_i2v_first_frame_is_close_to_the_control_image(tiny_model):
    """The i2v pipeline keeps the control image's latents as the first latent frame. The tiny VAE is random,
    so the reference is the VAE's own reconstruction of the control image, and the clip is one frame (one
    latent frame: the tiny decoder mixes neighbouring latent frames into each output frame). Measured:
    the right image ~43 dB; another image through the same path ~28 dB; text-to-video ~16 dB."""
    from toolkit.data.media import read_video

    settings = GenerationSettings(width=64, height=64, num_frames=1, fps=24, steps=3, guidance_scale=1.0, seed=1)
    embeds = tiny_model.get_prompt_embeds(["a red square"], keep_text_states=True)
    control, _ = load_control_image(CONTROL_IMAGE, 64, 64)
    other = Image.fromarray(read_video(OTHER_IMAGE_CLIP, 1).frames[0].numpy())
    reference = _vae_reconstruction(tiny_model, control)

    def first_frame(image) -> np.ndarray:
        frames, _, _ = run_pipeline(tiny_model, embeds, None, settings, image)
        return frames[0].numpy()

    right, wrong, text_only = first_frame(control), first_frame(other), first_frame(None)
    floor = 35.0
    assert _psnr(right, reference) > floor
    assert _psnr(wrong, reference) < floor - 3
    assert _psnr(text_only, reference) < floor - 10


def test_i2v_example_runs_and_traces_every_point(tmp_path, tiny_ready, capsys, monkeypatch):
    """The example through run.py's main() in this process (the tiny example's test is the one that starts
    run.py as a user does); the example's paths are relative to the repository."""
    import run

    monkeypatch.chdir(REPO_ROOT)
    output = tmp_path / "output"
    code = run.main([
        str(I2V_EXAMPLE),
        "--set", f"config.process.0.training_folder={output}",
        "--set", "config.process.0.train.steps=2",
        "--set", "config.process.0.sample.sample_every=2",
        "--set", "config.process.0.sample.sample_steps=2",
        "--set", "config.process.0.save.save_every=2",
    ])
    result = capsys.readouterr()
    assert code == run.EXIT_OK, result.err[-3000:]
    lines = [line for line in (result.out + result.err).splitlines() if line.startswith("[VERBOSE]")]

    def verbose(*parts: str) -> list[str]:
        return [line for line in lines if all(part in line for part in parts)]

    assert verbose("i2v_conditioning applied=True", "tokens_fixed_per_clip=", "min=64 max=64", "tokens_per_clip=128")
    assert verbose("generate_single_image", "pipeline=LTX2ImageToVideoPipeline", "pipeline_reason=the prompt names a control image")
    assert verbose("generate_single_image", "pipeline=LTX2Pipeline", "pipeline_reason=text-only prompt")
    assert verbose("generate_single_image", "vae_decode_tiling=True")
    assert verbose("control_image", "size_before=[64, 64]", "size_after=[64, 64]")
    # diffusers' EMAModel: the first update takes the weights as they are, the next ones blend at ema_decay.
    # ai-toolkit's EMA ramp: update n blends at min(ema_decay, (1 + n) / (10 + n)): 2/11, then 3/12.
    assert verbose("ema_update step=0 decay=0.1818 tensors=") and verbose("ema_update step=1 decay=0.25 ")
    assert verbose("ema_weights action=swapped in reason=sampling")
    assert verbose("auxiliary_loss loss_name=preservation")
    assert verbose("hook_train_loop done", "aux_losses={preservation:")
    assert verbose("predict_noise kind=primary") and verbose("predict_noise kind=auxiliary", "lora=disabled")
    assert verbose("predict_noise kind=preservation", "lora=enabled")
    assert verbose("generate_single_image prompt=sqrtrace a red square")  # [trigger] filled in the sample prompt

    run_folder = output / "ltx2_i2v_tiny_lora"
    assert (run_folder / "ltx2_i2v_tiny_lora.safetensors").is_file()
    assert (run_folder / "ltx2_i2v_tiny_lora_no_ema.safetensors").is_file()  # the EMA is the LoRA file
    assert sorted(p.name for p in (run_folder / "samples").glob("*.mp4")) == [
        "000000000_0.mp4", "000000000_1.mp4", "000000002_0.mp4", "000000002_1.mp4"
    ]
