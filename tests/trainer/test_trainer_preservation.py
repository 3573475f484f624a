"""Differential output preservation: the auxiliary prediction is the base model's (adapter disabled) on the
class caption, and the preservation loss pulls the LoRA's prediction on that caption towards it."""

from __future__ import annotations

import pytest
import torch

from tests.trainer.conftest import RecordedPredictions, set_up_trainer, train_steps, write_config
from toolkit.config import load_config
from toolkit.errors import ConfigError

TRIGGER = "sqrtrace"
CLASS_WORD = "shape"
STRENGTH = 0.5
POSITIONS = [2]


@pytest.fixture(scope="module")
def preserving(tmp_path_factory, tiny_cache_dir):
    folder = tmp_path_factory.mktemp("preservation")
    config = write_config(
        folder,
        {
            "trigger_word": TRIGGER,
            "train.diff_output_preservation": True,
            "train.diff_output_preservation_strength": STRENGTH,
            "train.diff_output_preservation_class": CLASS_WORD,
            "train.video_loss_weight": 1.0,
            "train.audio_loss_weight": 0.5,
            "train.lr": 1e-2,
            "train.steps": 10,
        },
        name="preservation",
    )
    trainer = set_up_trainer(config)
    train_steps(trainer, 3)  # LoRA B is no longer zero: the adapter changes predictions
    trainer.recorded = RecordedPredictions(trainer.model)
    return trainer


def _loss_calls(trainer):
    trainer.recorded.calls.clear()
    with torch.no_grad():
        loss, video_loss, audio_loss, aux, _ = trainer.step_loss.compute(POSITIONS, step=3)
    primary, auxiliary, preservation = trainer.recorded.calls
    return {"loss": loss, "video": video_loss, "audio": audio_loss, "aux": aux,
            "primary": primary, "auxiliary": auxiliary, "preservation": preservation}


def test_class_captions_are_encoded_before_the_text_encoder_is_unloaded(preserving, tiny_model):
    assert not preserving.model.text_encoder_loaded
    captions = preserving.preservation.class_prompts.captions
    assert captions == [e.caption.replace(TRIGGER, CLASS_WORD) for e in preserving.data.examples]
    assert all(c.startswith(f"{CLASS_WORD} ") for c in captions)
    expected = tiny_model.get_prompt_embeds([captions[0]])
    torch.testing.assert_close(preserving.preservation.class_prompts.prompts[0]["video"], expected["video"])


def test_auxiliary_prediction_ignores_the_lora_weights(preserving):
    trainer = preserving
    first = _loss_calls(trainer)
    # All three predictions see the same noisy latents; the class caption goes to the auxiliary and preservation ones.
    assert torch.equal(first["auxiliary"]["noisy_video"], first["primary"]["noisy_video"])
    class_embeds = first["auxiliary"]["prompt"]["video"]
    assert torch.equal(class_embeds, first["preservation"]["prompt"]["video"])
    assert not torch.equal(class_embeds, first["primary"]["prompt"]["video"])

    lora_b = {name: p for name, p in trainer.network.named_parameters() if "lora_B" in name}
    originals = {name: p.detach().clone() for name, p in lora_b.items()}
    try:
        with torch.no_grad():
            for parameter in lora_b.values():
                parameter.mul_(10.0)
        scaled = _loss_calls(trainer)
    finally:
        with torch.no_grad():
            for name, parameter in lora_b.items():
                parameter.copy_(originals[name])
    # LoRA B x10: the auxiliary prediction is bit-for-bit the same; the adapter-on predictions are not.
    assert torch.equal(scaled["auxiliary"]["predicted_video"], first["auxiliary"]["predicted_video"])
    assert torch.equal(scaled["auxiliary"]["predicted_audio"], first["auxiliary"]["predicted_audio"])
    assert not torch.allclose(scaled["preservation"]["predicted_video"], first["preservation"]["predicted_video"], atol=1e-4)
    assert not torch.allclose(scaled["primary"]["predicted_video"], first["primary"]["predicted_video"], atol=1e-4)


def test_preservation_loss_by_hand_and_its_weight_in_the_loss(preserving):
    parts = _loss_calls(preserving)
    lora, base = parts["preservation"], parts["auxiliary"]
    video_weight, audio_weight = 1.0, 0.5
    by_hand = video_weight * ((lora["predicted_video"] - base["predicted_video"]) ** 2).mean() + audio_weight * ((lora["predicted_audio"] - base["predicted_audio"]) ** 2).mean()
    assert parts["aux"]["preservation"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert parts["aux"]["preservation"].item() > 0
    total = video_weight * parts["video"] + audio_weight * parts["audio"] + STRENGTH * parts["aux"]["preservation"]
    assert parts["loss"].item() == pytest.approx(total.item(), rel=1e-6)


def test_adapter_trains_again_after_the_auxiliary_prediction(preserving):
    trainer = preserving
    before = {name: p.detach().clone() for name, p in trainer.network.named_parameters()}
    result = train_steps(trainer, 1)[0]
    assert trainer.network.parameters() and all(p.requires_grad for p in trainer.network.parameters())
    assert result.aux_losses["preservation"] > 0 and result.grad_norm > 0
    changed = [name for name, p in trainer.network.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(before)


def test_preservation_needs_a_trigger_word(tmp_path):
    config = write_config(tmp_path, {"train.diff_output_preservation": True}, name="no_trigger")
    with pytest.raises(ConfigError, match="diff_output_preservation needs `trigger_word`"):
        load_config(config)
