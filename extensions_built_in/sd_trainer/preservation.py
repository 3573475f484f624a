"""Differential output preservation (ai-toolkit's `diff_output_preservation`).

The LoRA should change what the trigger word produces and leave the class
alone. Each step, the caption with the trigger word replaced by the class
word ("sks dog" -> "dog") is predicted twice on the same noisy latents:
with the adapter disabled (the auxiliary prediction: what the base model
does, a fixed target, no gradient) and with it enabled. Their squared
difference, weighted like the main loss's video and audio parts and by
`diff_output_preservation_strength`, is added to the loss.

The class captions are encoded with the training captions, before the text
encoder is unloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toolkit.models.model_inputs import PromptEmbeds
from toolkit.trace import get_tracer

from .flow_matching import masked_mse
from .trigger import class_caption


@dataclass
class ClassPrompts:
    """The class caption of each training example and its encoded prompt (batch dim 1, on the CPU)."""

    captions: list[str]
    prompts: list[PromptEmbeds]


def encode_class_prompts(model, captions: list[str], trigger_word: str, class_word: str) -> ClassPrompts:
    """Encode the class caption of every training caption (each distinct one once)."""
    class_captions = [class_caption(caption, trigger_word, class_word) for caption in captions]
    encoded: dict[str, PromptEmbeds] = {}
    for text in class_captions:
        if text not in encoded:
            encoded[text] = model.get_prompt_embeds([text]).to("cpu")
    return ClassPrompts(class_captions, [encoded[text] for text in class_captions])


def preservation_loss(
    lora_prediction, base_prediction, video_loss_mask: torch.Tensor | None, video_weight: float, audio_weight: float
) -> torch.Tensor:
    """Weighted MSE between the LoRA's and the base model's predictions on the class captions."""
    video = masked_mse(lora_prediction.video, base_prediction.video.detach(), video_loss_mask)
    audio = masked_mse(lora_prediction.audio, base_prediction.audio.detach())
    return video_weight * video + audio_weight * audio


class OutputPreservation:
    """The preservation loss of a run: its class prompts and weights (from `train:`)."""

    def __init__(self, class_prompts: ClassPrompts, train_config):
        self.class_prompts = class_prompts
        self.strength = train_config.diff_output_preservation_strength
        self.video_weight = train_config.video_loss_weight
        self.audio_weight = train_config.audio_loss_weight

    def loss(self, predict, network, example_indices: list[int], video_loss_mask, device) -> torch.Tensor:
        """The (unweighted by strength) preservation loss of a batch.

        `predict(kind, prompt, **trace_fields)` predicts the batch's noisy latents with `prompt`;
        `example_indices` say which training example each clip of the batch is.
        """
        class_prompt = PromptEmbeds.cat([self.class_prompts.prompts[index] for index in example_indices]).to(device)
        with torch.no_grad():
            network.set_enabled(False)
            try:
                base = predict("auxiliary", class_prompt, lora="disabled", caption="class")
            finally:
                network.set_enabled(True)
        with_lora = predict("preservation", class_prompt, lora="enabled", caption="class")
        loss = preservation_loss(with_lora, base, video_loss_mask, self.video_weight, self.audio_weight)
        get_tracer().event("auxiliary_loss", loss_name="preservation", loss=loss, strength=self.strength)
        return loss
