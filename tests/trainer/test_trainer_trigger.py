"""Trigger words: `[trigger]` filled in captions and sample prompts, prepended to captions without it,
before anything is encoded."""

from __future__ import annotations

import pytest
import torch

from extensions_built_in.sd_trainer.trigger import caption_with_trigger, class_caption, fill_placeholder
from tests.trainer.conftest import set_up_trainer, write_config

TRIGGER = "sqrtrace"


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("[trigger] a red square", "sqrtrace a red square"),
        ("a photo of [trigger], moving left", "a photo of sqrtrace, moving left"),
        ("a red square", "sqrtrace a red square"),
        ("a sqrtrace square", "a sqrtrace square"),  # already there: left as written
        ("a sqrtraced square", "sqrtrace a sqrtraced square"),  # a longer word is not the trigger word
        ("", "sqrtrace"),
    ],
)
def test_training_captions_get_the_trigger_word(caption, expected):
    assert caption_with_trigger(caption, TRIGGER) == expected


def test_without_a_trigger_word_the_placeholder_is_removed():
    assert caption_with_trigger("a photo of [trigger], moving left", None) == "a photo of, moving left"
    assert caption_with_trigger("a red square", None) == "a red square"


def test_sample_prompts_are_filled_but_not_prepended():
    assert fill_placeholder("[trigger] a red square", TRIGGER) == "sqrtrace a red square"
    assert fill_placeholder("a red square", TRIGGER) == "a red square"


def test_class_captions_replace_the_trigger_word():
    assert class_caption("sqrtrace a red square", TRIGGER, "shape") == "shape a red square"
    assert class_caption("a [trigger] moving, then sqrtrace again", TRIGGER, "shape") == "a shape moving, then shape again"
    assert class_caption("a sqrtraced square", TRIGGER, "shape") == "a sqrtraced square"


@pytest.fixture(scope="module")
def triggered(tmp_path_factory, tiny_cache_dir):
    folder = tmp_path_factory.mktemp("trigger")
    config = write_config(
        folder,
        {
            "trigger_word": TRIGGER,
            "train.disable_sampling": False,
            "sample.prompts": [
                "[trigger] a red square moving left to right",
                {"prompt": "a blue circle, no trigger here", "seed": 5},
            ],
        },
        name="trigger",
    )
    return set_up_trainer(config)


def test_captions_are_encoded_with_the_trigger_word(triggered, tiny_model):
    examples = triggered.data.examples
    assert len(examples) == 4
    for example in examples:
        assert example.caption.startswith(f"{TRIGGER} ")
        assert example.path.with_suffix(".txt").read_text().strip() == example.caption.removeprefix(f"{TRIGGER} ")
    # What was encoded is the caption with the trigger word (the session model has the same weights).
    first = examples[0]
    expected = tiny_model.get_prompt_embeds([first.caption])
    without = tiny_model.get_prompt_embeds([first.caption.removeprefix(f"{TRIGGER} ")])
    torch.testing.assert_close(first.prompt["video"], expected["video"])
    assert not torch.allclose(first.prompt["video"], without["video"])


def test_sample_prompts_have_the_placeholder_filled_before_encoding(triggered, tiny_model):
    prompts = triggered.sampler.prompts
    assert [p.prompt for p in prompts] == ["sqrtrace a red square moving left to right", "a blue circle, no trigger here"]
    expected = tiny_model.get_prompt_embeds([prompts[0].prompt], keep_text_states=True)
    torch.testing.assert_close(prompts[0].embeds.for_sampling["text_states"], expected.for_sampling["text_states"])
