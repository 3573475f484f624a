"""get_prompt_embeds (shapes, left padding, truncation, its trace) and get_noise_prediction on the tiny LTX-2."""

from __future__ import annotations

import json

import pytest
import torch

from toolkit.trace import TraceConfig, init_tracer, reset_tracer


@pytest.fixture
def traced(tmp_path):
    """Turns the tracer on (files only) for one test; yields a function that closes it and returns its records."""
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))

    def finish() -> list[dict]:
        reset_tracer()
        return [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]

    yield finish
    reset_tracer()


def span_ends(records: list[dict], name: str) -> list[dict]:
    return [record for record in records if record["type"] == "span_end" and record["name"] == name]


# -- get_prompt_embeds ---------------------------------------------------------
def test_prompt_embeds_shapes(tiny_model):
    max_length = tiny_model.max_sequence_length
    assert max_length == 128
    width = tiny_model.transformer.config.caption_channels
    assert width == 32
    embeds = tiny_model.get_prompt_embeds(["a red square moving left", "hi", "a blue circle"])
    assert tuple(embeds["video"].shape) == (3, max_length, width)
    assert tuple(embeds["audio"].shape) == (3, max_length, width)
    assert tuple(embeds.attention_mask.shape) == (3, max_length)
    assert embeds.for_sampling == {}  # the text states only when asked (sampling)
    assert torch.isfinite(embeds["video"]).all() and torch.isfinite(embeds["audio"]).all()
    assert not torch.equal(embeds["video"][0], embeds["video"][1])


def test_short_prompt_is_left_padded(tiny_model):
    embeds = tiny_model.get_prompt_embeds(["hi"], keep_text_states=True)
    token_count = len(tiny_model.tokenizer("hi").input_ids)
    assert token_count == 3  # <bos> h i
    expected_mask = torch.tensor([[0] * (128 - token_count) + [1] * token_count])
    assert torch.equal(embeds.for_sampling["text_mask"].cpu(), expected_mask)
    hidden = tiny_model.text_encoder.config.text_config
    assert tuple(embeds.for_sampling["text_states"].shape) == (1, 128, hidden.hidden_size * (hidden.num_hidden_layers + 1))


def test_tokens_kept_in_the_trace_equal_the_mask(tiny_model, traced):
    prompts = ["a red square", "a blue circle moving from top to bottom"]
    embeds = tiny_model.get_prompt_embeds(prompts, keep_text_states=True)
    (end,) = span_ends(traced(), "get_prompt_embeds")
    assert end["fields"]["tokens_kept"] == embeds.for_sampling["text_mask"].sum(dim=1).tolist()
    assert end["fields"]["tokens_kept"] == [1 + len(prompt) for prompt in prompts]  # <bos> and one token a byte
    assert end["fields"]["truncated"] == [False, False]
    assert end["fields"]["video_embeds"]["shape"] == [2, 128, 32]


def test_prompt_longer_than_max_length_is_truncated(tiny_model, traced):
    long_prompt = "a very long caption " * 10  # 200 bytes, more than 128 tokens
    embeds = tiny_model.get_prompt_embeds([long_prompt, "short"], keep_text_states=True)
    assert embeds.for_sampling["text_mask"][0].sum().item() == 128
    assert tuple(embeds["video"].shape) == (2, 128, 32)
    (end,) = span_ends(traced(), "get_prompt_embeds")
    assert end["fields"]["truncated"] == [True, False]
    assert end["fields"]["tokens_kept"] == [128, 1 + len("short")]


# -- get_noise_prediction ------------------------------------------------------
@pytest.fixture(scope="module")
def prediction_inputs(tiny_model):
    generator = torch.Generator().manual_seed(5)
    video = torch.randn(2, 4, 2, 4, 6, generator=generator)
    audio = torch.randn(2, 1, 25, 4, generator=generator)
    prompt = tiny_model.get_prompt_embeds(["a red square", "a blue circle"])
    return video, audio, torch.tensor([0.7, 0.2]), prompt


def test_prediction_has_the_shapes_of_its_inputs(tiny_model, prediction_inputs):
    video, audio, sigmas, prompt = prediction_inputs
    prediction = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    assert prediction.video.shape == video.shape
    assert prediction.audio.shape == audio.shape
    assert torch.isfinite(prediction.video).all() and torch.isfinite(prediction.audio).all()


def test_prediction_is_deterministic_and_depends_on_the_noise_level(tiny_model, prediction_inputs):
    video, audio, sigmas, prompt = prediction_inputs
    first = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    second = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    assert torch.equal(first.video, second.video) and torch.equal(first.audio, second.audio)
    other = tiny_model.get_noise_prediction(video, audio, torch.tensor([0.1, 0.9]), prompt, fps=24.0)
    assert not torch.allclose(first.video, other.video, atol=1e-4)


def test_per_token_video_sigmas(tiny_model, prediction_inputs):
    video, audio, sigmas, prompt = prediction_inputs
    tokens = video.shape[2] * video.shape[3] * video.shape[4]
    uniform = sigmas[:, None].expand(2, tokens).clone()
    by_sample = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    by_token = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0, video_sigmas=uniform)
    torch.testing.assert_close(by_token.video, by_sample.video, rtol=1e-5, atol=1e-5)
    # Image-to-video: the first latent frame's tokens are clean (sigma 0); the prediction changes.
    first_frame_clean = uniform.clone()
    first_frame_clean[:, : tokens // video.shape[2]] = 0.0
    conditioned = tiny_model.get_noise_prediction(
        video, audio, sigmas, prompt, fps=24.0, video_sigmas=first_frame_clean
    )
    assert conditioned.video.shape == video.shape
    assert not torch.allclose(conditioned.video, by_sample.video, atol=1e-4)
