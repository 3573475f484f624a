"""Trigger words: the word that calls the LoRA, put into captions and sample prompts.

As in ai-toolkit: `[trigger]` anywhere in a caption or sample prompt is
replaced by `trigger_word`; a training caption that still lacks the trigger
word gets it prepended (sample prompts are left as written, so a prompt
without the word shows what the model does without it). Without a
`trigger_word`, `[trigger]` is removed, since the placeholder itself must
never reach the text encoder.
"""

from __future__ import annotations

import re

PLACEHOLDER = "[trigger]"


def _tidy(text: str) -> str:
    # Removing or replacing the placeholder can leave doubled spaces or a space before punctuation.
    text = re.sub(r"\s{2,}", " ", text)
    return re.sub(r"\s+([,.;:!?])", r"\1", text).strip()


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def fill_placeholder(text: str, trigger_word: str | None) -> str:
    """`text` with every `[trigger]` replaced by the trigger word (or removed when there is none)."""
    if PLACEHOLDER not in text:
        return text
    return _tidy(text.replace(PLACEHOLDER, trigger_word or ""))


def caption_with_trigger(caption: str, trigger_word: str | None) -> str:
    """A training caption: `[trigger]` filled, the trigger word prepended when the caption lacks it."""
    caption = fill_placeholder(caption, trigger_word)
    if not trigger_word or _contains_word(caption, trigger_word):
        return caption
    return f"{trigger_word} {caption}".strip()


def class_caption(caption: str, trigger_word: str, class_word: str) -> str:
    """The caption with the trigger word replaced by the class word (differential output preservation)."""
    caption = fill_placeholder(caption, trigger_word)
    return _tidy(re.sub(rf"(?<!\w){re.escape(trigger_word)}(?!\w)", class_word, caption))


class TriggerWord:
    """The config's trigger word as the caption transforms the trainer and the sampler take."""

    def __init__(self, trigger_word: str | None):
        self.word = trigger_word

    def caption(self, caption: str) -> str:
        return caption_with_trigger(caption, self.word)

    def sample_prompt(self, prompt: str) -> str:
        return fill_placeholder(prompt, self.word)
