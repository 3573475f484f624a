"""Training forward == inference forward: the transformer call of `LTX2Model.get_noise_prediction`
against the one diffusers' pipelines make in a denoising step, for every LTX-2 version, text-to-video
and image-to-video.

The pipeline runs with guidance_scale 1 (its conditional branch only) on the tiny model of each
version; forward hooks capture the arguments and outputs of its second transformer call (sigma
below 1). The trainer then predicts for the same noisy latents, noise level, prompt and condition
(image-to-video: `FirstFrameCondition`, as `SDTrainer` builds it), under the same hooks. Both calls
are compared as the transformer sees them: defaults it fills in (`audio_sigma`, coordinates from
frames/height/width/fps, ...) are resolved first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from extensions_built_in.diffusion_models.ltx2 import latent_layout
from extensions_built_in.diffusion_models.ltx2.generation import build_pipeline
from extensions_built_in.diffusion_models.ltx2.timestep_conditioning import TIMESTEP_SCALE
from extensions_built_in.sd_trainer.i2v import FirstFrameCondition
from tests.conftest import NO_GUIDANCE

VERSIONS = ["2.0", "2.3", "2.5"]
PROMPT = "a red square moving left to right, with a 440 Hz tone"
SIZE, NUM_FRAMES, FPS = 64, 9, 24.0


@dataclass
class TransformerCall:
    kwargs: dict
    video_out: torch.Tensor
    audio_out: torch.Tensor


class CallRecorder:
    """Forward pre-hook and forward hook on a transformer: every call's kwargs and outputs."""

    def __init__(self, transformer):
        self.transformer = transformer
        self.calls: list[TransformerCall] = []

    def __enter__(self) -> "CallRecorder":
        def before(module, args, kwargs):
            assert not args, "the pipelines and the trainer pass every transformer argument by name"
            self.calls.append(TransformerCall(dict(kwargs), None, None))

        def after(module, args, kwargs, output):
            self.calls[-1].video_out, self.calls[-1].audio_out = (tensor.detach().clone() for tensor in output[:2])

        self.handles = [
            self.transformer.register_forward_pre_hook(before, with_kwargs=True),
            self.transformer.register_forward_hook(after, with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def effective_call(transformer, kwargs: dict) -> dict:
    """The transformer call with the defaults its forward fills in resolved (diffusers 0.42.1's
    `LTX2VideoTransformer3DModel.forward`), so that two ways of saying the same thing compare equal."""
    batch = kwargs["hidden_states"].shape[0]
    device = kwargs["hidden_states"].device
    video_coords = kwargs.get("video_coords")
    if video_coords is None:
        video_coords = transformer.rope.prepare_video_coords(
            batch, kwargs["num_frames"], kwargs["height"], kwargs["width"], device, fps=kwargs.get("fps", 24.0)
        )
    audio_coords = kwargs.get("audio_coords")
    if audio_coords is None:
        audio_coords = transformer.audio_rope.prepare_audio_coords(batch, kwargs["audio_num_frames"], device)
    timestep = kwargs["timestep"]
    audio_timestep = kwargs.get("audio_timestep")
    sigma = kwargs.get("sigma")
    audio_sigma = kwargs.get("audio_sigma")
    return {
        "hidden_states": kwargs["hidden_states"],
        "audio_hidden_states": kwargs["audio_hidden_states"],
        "encoder_hidden_states": kwargs["encoder_hidden_states"],
        "audio_encoder_hidden_states": kwargs["audio_encoder_hidden_states"],
        "encoder_attention_mask": kwargs.get("encoder_attention_mask"),
        "audio_encoder_attention_mask": kwargs.get("audio_encoder_attention_mask"),
        "timestep": timestep,
        "audio_timestep": audio_timestep if audio_timestep is not None else timestep,
        "sigma": sigma,
        "audio_sigma": audio_sigma if audio_sigma is not None else sigma,
        "use_cross_timestep": kwargs.get("use_cross_timestep", False),
        "video_coords": video_coords,
        "audio_coords": audio_coords,
        "isolate_modalities": kwargs.get("isolate_modalities", False),
        "spatio_temporal_guidance_blocks": kwargs.get("spatio_temporal_guidance_blocks") or [],
        "perturbation_mask": kwargs.get("perturbation_mask"),
        "video_self_attention_mask": kwargs.get("video_self_attention_mask"),
        "video_keyframes_mask": kwargs.get("video_keyframes_mask"),
        "attention_kwargs": kwargs.get("attention_kwargs") or {},
    }


def assert_same_call(trainer: dict, pipeline: dict) -> None:
    assert trainer.keys() == pipeline.keys()
    for name, expected in pipeline.items():
        actual = trainer[name]
        if isinstance(expected, torch.Tensor):
            assert isinstance(actual, torch.Tensor), f"{name}: the trainer passes {actual!r}, the pipeline a tensor"
            if name in ("timestep", "audio_timestep", "sigma", "audio_sigma"):
                assert actual.dtype == expected.dtype, f"{name}: {actual.dtype} != {expected.dtype}"
                assert actual.shape == expected.shape, f"{name}: {tuple(actual.shape)} != {tuple(expected.shape)}"
            # t / 1000 * 1000 may differ from t in the last bit.
            torch.testing.assert_close(
                actual.to(expected.dtype).expand_as(expected), expected, rtol=1e-6, atol=1e-6,
                msg=lambda message, name=name: f"{name}: {message}",
            )
        else:
            assert actual == expected, f"{name}: the trainer passes {actual!r}, the pipeline {expected!r}"


def control_image():
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def pipeline_step(model, image_to_video: bool) -> TransformerCall:
    """The pipeline's transformer call in its second denoising step, guidance off."""
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

    prompt = model.get_prompt_embeds([PROMPT], keep_text_states=True)
    pipeline = build_pipeline(model, LTX2ImageToVideoPipeline if image_to_video else LTX2Pipeline)
    image = {"image": control_image()} if image_to_video else {}
    with CallRecorder(model.transformer) as recorder:
        pipeline(
            **image,
            prompt_embeds=prompt.for_sampling["text_states"],
            prompt_attention_mask=prompt.for_sampling["text_mask"],
            height=SIZE,
            width=SIZE,
            num_frames=NUM_FRAMES,
            frame_rate=FPS,
            num_inference_steps=2,
            **NO_GUIDANCE,
            generator=torch.Generator().manual_seed(11),
            output_type="latent",
            max_sequence_length=model.max_sequence_length,
        )
    assert len(recorder.calls) == 2, "one transformer call a step without guidance"
    return recorder.calls[1]


def trainer_step(model, pipeline_call: TransformerCall, image_to_video: bool) -> TransformerCall:
    """The trainer's prediction for the pipeline call's noisy latents, noise level, prompt and condition."""
    kwargs = pipeline_call.kwargs
    frames, height, width = kwargs["num_frames"], kwargs["height"], kwargs["width"]
    noisy_video = latent_layout.unpack_video(kwargs["hidden_states"], frames, height, width)
    audio_channels = model.audio_vae.config.latent_channels
    noisy_audio = latent_layout.unpack_audio(kwargs["audio_hidden_states"], audio_channels)
    sigmas = kwargs["sigma"] / TIMESTEP_SCALE
    video_sigmas = None
    if image_to_video:
        video_sigmas = FirstFrameCondition.for_clips([True], noisy_video).token_sigmas(sigmas)
    prompt = model.get_prompt_embeds([PROMPT])
    with CallRecorder(model.transformer) as recorder:
        prediction = model.get_noise_prediction(
            noisy_video, noisy_audio, sigmas, prompt, fps=kwargs["fps"], video_sigmas=video_sigmas
        )
    (call,) = recorder.calls
    # What the trainer returns is what the transformer returned, unpacked.
    torch.testing.assert_close(latent_layout.pack_video(prediction.video), call.video_out, rtol=0, atol=0)
    torch.testing.assert_close(latent_layout.pack_audio(prediction.audio), call.audio_out, rtol=0, atol=0)
    return call


@pytest.mark.parametrize("image_to_video", [False, True], ids=["t2v", "i2v"])
@pytest.mark.parametrize("version", VERSIONS)
def test_training_forward_is_the_pipeline_forward(tiny_models, version, image_to_video):
    model = tiny_models(version)
    assert model.variant.version == version
    pipeline_call = pipeline_step(model, image_to_video)
    trainer_call = trainer_step(model, pipeline_call, image_to_video)

    pipeline_args = effective_call(model.transformer, pipeline_call.kwargs)
    trainer_args = effective_call(model.transformer, trainer_call.kwargs)
    assert_same_call(trainer_args, pipeline_args)
    if image_to_video:
        tokens_per_frame = pipeline_call.kwargs["height"] * pipeline_call.kwargs["width"]
        assert (pipeline_args["timestep"][:, :tokens_per_frame] == 0).all()
        assert (pipeline_args["timestep"][:, tokens_per_frame:] > 0).all()
    torch.testing.assert_close(trainer_call.video_out, pipeline_call.video_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trainer_call.audio_out, pipeline_call.audio_out, rtol=1e-5, atol=1e-5)


def test_trace_shows_the_timestep_conditioning(tiny_model, tmp_path, jsonl_reader):
    """The traced get_noise_prediction says what the transformer got: the timestep scale, use_cross_timestep
    and the per-token video timesteps of image-to-video (0 on the condition frame)."""
    from toolkit.trace import TraceConfig, init_tracer, reset_tracer

    generator = torch.Generator().manual_seed(2)
    video = torch.randn(2, 4, 2, 4, 4, generator=generator)
    audio = torch.randn(2, 1, 9, 4, generator=generator)
    sigmas = torch.tensor([0.25, 0.75])
    condition = FirstFrameCondition.for_clips([True, False], video)
    prompt = tiny_model.get_prompt_embeds(["a red square", "a blue circle"])
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    try:
        video_sigmas = condition.token_sigmas(sigmas)
        tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0, video_sigmas=video_sigmas)
    finally:
        reset_tracer()
    records = jsonl_reader(tmp_path / "trace.jsonl")
    (begin,) = [r for r in records if r["type"] == "span_begin" and r["name"] == "get_noise_prediction"]
    fields = begin["fields"]
    assert fields["timestep_scale"] == TIMESTEP_SCALE == 1000.0
    assert fields["use_cross_timestep"] is True
    assert fields["per_token_video_timesteps"] is True
    assert fields["video_timestep"]["shape"] == [2, 2 * 4 * 4]
    assert fields["video_timestep"]["dtype"] == "torch.float32"
    assert fields["video_timestep"]["min"] == 0.0  # the first clip's condition frame
    assert fields["video_timestep"]["max"] == pytest.approx(750.0)
    assert fields["sigma"]["shape"] == [2]
    assert (fields["sigma"]["min"], fields["sigma"]["max"]) == pytest.approx((250.0, 750.0))
    assert (fields["audio_timestep"]["min"], fields["audio_timestep"]["max"]) == pytest.approx((250.0, 750.0))


@pytest.mark.parametrize(
    "version, image_to_video, change",
    [
        ("2.3", False, "sigma in [0, 1]"),
        ("2.5", False, "sigma in [0, 1]"),
        ("2.0", True, "no use_cross_timestep"),
    ],
)
def test_the_parity_check_sees_each_known_mismatch(tiny_models, version, image_to_video, change):
    """Each way the trainer used to differ from the pipelines changes the tiny models' output well beyond
    the parity tolerance, so the parity test above would catch it coming back. (Timesteps rounded to bf16
    move the tiny models' output by only ~1e-6; the dtype comparison in `assert_same_call` guards those.)"""
    model = tiny_models(version)
    pipeline_call = pipeline_step(model, image_to_video)
    kwargs = dict(pipeline_call.kwargs)
    if change == "sigma in [0, 1]":
        kwargs["sigma"] = kwargs["sigma"] / TIMESTEP_SCALE
    else:
        kwargs["use_cross_timestep"] = False
    with torch.no_grad():
        video_out, audio_out = model.transformer(**kwargs)[:2]
    difference = max(
        (video_out - pipeline_call.video_out).abs().max(), (audio_out - pipeline_call.audio_out).abs().max()
    )
    assert difference > 1e-3, f"{change} on {version}: max |difference| {difference.item():.2e}"
