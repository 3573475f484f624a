"""Each clip of a batch keeps its own frame rate: it reaches the transformer's video positions (RoPE) per clip."""

from __future__ import annotations

from pathlib import Path

import torch

from extensions_built_in.sd_trainer.step_loss import FlowMatchingLoss
from extensions_built_in.sd_trainer.training_data import TrainingExample
from toolkit.config import TrainConfig
from toolkit.models.model_inputs import PromptEmbeds


def _loss(model) -> FlowMatchingLoss:
    """The training loss around the shared tiny model (fp32, no preservation); the clips are given to `group_loss`."""
    empty = model.get_prompt_embeds([""])
    return FlowMatchingLoss(TrainConfig(dtype="fp32"), model, None, None, empty, None, None)


def _clip(model, fps: float, seed: int) -> TrainingExample:
    generator = torch.Generator().manual_seed(seed)
    return TrainingExample(
        path=Path(f"clip_{fps:g}fps.mp4"),
        caption="a red square",
        video_latents=torch.randn(4, 2, 2, 2, generator=generator),
        audio_latents=torch.randn(1, 6, 4, generator=generator),
        prompt=model.get_prompt_embeds(["a red square"]),
        fps=fps,
        audio_is_silence=False,
        pixel_shape=(9, 64, 64),
    )


def test_two_clips_of_different_fps_each_get_their_own_positions(tiny_model):
    loss = _loss(tiny_model)
    members = [(0, _clip(tiny_model, 24.0, 1)), (1, _clip(tiny_model, 12.0, 2))]
    received = []
    hook = tiny_model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: received.append(kwargs), with_kwargs=True
    )
    try:
        with torch.no_grad():
            loss.group_loss(members, step=0, keep_details=True)
    finally:
        hook.remove()

    (call,) = received
    rope = tiny_model.transformer.rope
    for row, fps in enumerate((24.0, 12.0)):
        alone = rope.prepare_video_coords(1, 2, 2, 2, torch.device("cpu"), fps=fps)
        torch.testing.assert_close(call["video_coords"][row : row + 1], alone, rtol=0, atol=0)
    assert call["video_coords"][1, 0].max() == 2 * call["video_coords"][0, 0].max() > 0  # time at half the rate
    torch.testing.assert_close(call["video_coords"][0, 1:], call["video_coords"][1, 1:])  # same space
    assert loss.last_details.fps == [24.0, 12.0]

    # The 12 fps clip's prediction in the batch is its prediction alone at 12 fps.
    details = loss.last_details
    prompt = PromptEmbeds({name: t[1:] for name, t in details.prompt.embeds.items()}, details.prompt.attention_mask[1:])
    with torch.no_grad():
        alone = tiny_model.get_noise_prediction(
            details.noisy_video[1:], details.noisy_audio[1:], details.sigmas[1:], prompt, fps=12.0
        )
    torch.testing.assert_close(details.video_prediction[1:], alone.video, rtol=1e-4, atol=1e-5)
